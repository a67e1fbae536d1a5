"""store.copyfmt: the binary COPY stream round-trips and matches PostgreSQL's layout."""

import struct

from hypothesis import given
from hypothesis import strategies as st

from store import copyfmt


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


class _R:
    def __init__(self, metric: str, t: float, value: float) -> None:
        self.metric, self.t, self.value = metric, t, value


@given(
    st.lists(
        st.lists(
            st.tuples(st.sampled_from(["air_t", "air_rh", "bat"]), st.integers(0, 50), st.floats(-1e6, 1e6)),
            max_size=20,
        ),
        max_size=6,
    )
)
def test_encode_readings_series_by_series(groups: list[list[tuple[str, int, float]]]) -> None:
    sids = [{"air_t": 10 * g + 3, "air_rh": 10 * g + 1, "bat": 10 * g + 2} for g in range(len(groups))]
    items = []
    for g, rows in enumerate(groups):
        rows = sorted(rows, key=lambda r: r[1])  # a node's samples arrive in time order
        items.append((sids[g], [_R(m, 1_790_000_000 + t, v) for m, t, v in rows]))
    plain, n_plain = copyfmt.encode_readings(items, by_series=False)
    grouped, n = copyfmt.encode_readings(items)
    assert n == n_plain == sum(len(rows) for rows in groups)
    a, b = copyfmt.decode(plain), copyfmt.decode(grouped)
    assert sorted(a) == sorted(b)  # the same rows...
    # ...group by group, each group series by series (ascending id), time order kept within a series
    assert [r[0] for r in b] == sorted(r[0] for r in b)
    assert [r for r in b if r[0] == 1] == [r for r in a if r[0] == 1]
