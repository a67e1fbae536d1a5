"""store.seqtrack against a plain model: whatever the arrival order and batching, the open gaps
are exactly the sequence numbers not yet received and every message is counted once."""

import itertools

from hypothesis import given
from hypothesis import strategies as st

from store.seqtrack import Gap, NodeState, apply


class FakeTable:
    """seq_gaps rows of one node, changed the way the writer changes them."""

    def __init__(self) -> None:
        self.open: dict[int, Gap] = {}
        self.filled: list[Gap] = []
        self.state = NodeState(None, None)
        self.received = 0
        self.dropped = 0

    def batch(self, arrivals: list[tuple[int, int, int]]) -> None:
        out = apply(self.state, list(self.open.values()), arrivals)
        for s in out.deleted_gaps:
            del self.open[s]
        for g in out.open_gaps:
            self.open[g.from_seq] = g
        self.filled += out.filled
        self.state = out.state
        self.received += out.new_messages
        self.dropped += out.dropped

    def missing(self) -> set[int]:
        return {s for g in self.open.values() for s in range(g.from_seq, g.to_seq + 1)}


def test_gap_detected_then_filled_by_a_late_message() -> None:
    t = FakeTable()
    t.batch([(1, 0, 0), (2, 0, 0), (6, 0, 3)])
    assert t.missing() == {3, 4, 5} and t.received == 3 and t.dropped == 3
    t.batch([(4, 0, 0)])
    assert t.missing() == {3, 5} and t.received == 4
    assert t.filled == [Gap(4, 4, 0)]
    t.batch([(4, 0, 0), (6, 0, 3), (2, 0, 0)])  # redeliveries change nothing
    assert t.missing() == {3, 5} and t.received == 4 and t.dropped == 3
    assert t.state.last_seq == 6


def test_counter_reset_with_a_new_boot_is_not_a_flood_of_duplicates() -> None:
    t = FakeTable()
    t.batch([(100, 3, 0), (101, 3, 0)])
    t.batch([(0, 4, 0), (1, 4, 0)])
    assert (t.state.last_seq, t.state.last_boot, t.received) == (1, 4, 4)
    assert t.missing() == set()


@given(
    seqs=st.lists(st.integers(0, 60), min_size=1, max_size=80),
    cuts=st.lists(st.integers(0, 80), max_size=6),
)
def test_any_order_and_batching_matches_the_model(seqs: list[int], cuts: list[int]) -> None:
    t = FakeTable()
    bounds = sorted({0, len(seqs), *(c for c in cuts if c < len(seqs))})
    for lo, hi in itertools.pairwise(bounds):
        t.batch([(s, 0, 1) for s in seqs[lo:hi]])
    got = set(seqs)
    assert t.state.first_seq == min(got) and t.state.last_seq == max(got)
    assert t.missing() == set(range(min(got), max(got) + 1)) - got
    assert t.received == len(got) and t.dropped == len(got)
    spans = sorted((g.from_seq, g.to_seq) for g in t.open.values())
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))  # no overlaps
