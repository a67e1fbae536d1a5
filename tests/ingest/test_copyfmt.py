"""ingest.copyfmt: the binary COPY stream round-trips and matches PostgreSQL's layout."""

import struct

from hypothesis import given
from hypothesis import strategies as st

from ingest import copyfmt


def test_layout_of_one_row() -> None:
    data = copyfmt.encode([(7, 946_684_801.5, 2.5)])
    assert data.startswith(b"PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")
    row = data[len(copyfmt.HEADER) : -2]
    assert row == struct.pack("!hiqiiid", 3, 8, 1_500_000, 4, 7, 8, 2.5)
    assert data.endswith(b"\xff\xff")


@given(
    st.lists(
        st.tuples(
            st.integers(1, 2**31 - 1),
            st.integers(0, 4_000_000_000).map(lambda s: s / 1000),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=50,
    )
)
def test_round_trip(rows: list[tuple[int, float, float]]) -> None:
    back = copyfmt.decode(copyfmt.encode(rows))
    assert [(s, round(t, 3), v) for s, t, v in back] == [(s, round(t, 3), v) for s, t, v in rows]
