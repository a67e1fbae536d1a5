"""Per-node message sequence bookkeeping: gaps, late fills, duplicates, counter resets. Pure.

A node numbers its messages ``seq`` = 0, 1, 2, ... across reboots (the counter is persisted), so a
jump from ``last_seq`` to ``seq > last_seq + 1`` means messages are missing: they are recorded as an
open gap. When a missing message arrives late, the gap is split around it and the filled seq is
kept as a closed row (``filled_at`` set), so completeness and "how late was it" both stay visible.
A seq at or below ``last_seq`` that fills no gap is a duplicate (redelivery) and counts nothing.
A node whose flash was wiped restarts at a lower seq with a higher ``boot``: that is a reset, not a
flood of duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Gap:
    from_seq: int
    to_seq: int
    boot: int


@dataclass(slots=True)
class NodeState:
    last_seq: int | None
    last_boot: int | None
    first_seq: int | None = None


@dataclass(slots=True)
class Outcome:
    state: NodeState
    new_messages: int = 0  # first receipts (duplicates excluded)
    dropped: int = 0  # sum of node-reported spool drops over first receipts
    deleted_gaps: list[int] = field(default_factory=list)  # from_seq of open gaps to delete
    open_gaps: list[Gap] = field(default_factory=list)  # open gaps to insert
    filled: list[Gap] = field(default_factory=list)  # closed (filled) rows to insert


def apply(state: NodeState, gaps: list[Gap], arrivals: list[tuple[int, int, int]]) -> Outcome:
    """Fold ``arrivals`` = [(seq, boot, dropped)] into ``state`` with the node's open ``gaps``.

    The result lists the database changes; ``state`` is not modified.
    """
    st = NodeState(state.last_seq, state.last_boot, state.first_seq)
    out = Outcome(st)
    open_by_start = {g.from_seq: g for g in gaps}
    seen: set[int] = set()
    for seq, boot, dropped in sorted(arrivals, key=lambda a: (a[1], a[0])):
        if seq in seen:
            continue
        seen.add(seq)
        if st.last_seq is None:
            st.last_seq, st.last_boot, st.first_seq = seq, boot, seq
        elif seq > st.last_seq:
            if seq > st.last_seq + 1:
                g = Gap(st.last_seq + 1, seq - 1, boot)
                open_by_start[g.from_seq] = g
            st.last_seq, st.last_boot = seq, max(boot, st.last_boot or 0)
        elif seq == st.last_seq:
            continue
        elif st.first_seq is not None and seq < st.first_seq and boot <= (st.last_boot or 0):
            # Older than anything seen from this node (it arrived late, after newer ones).
            if seq < st.first_seq - 1:
                g = Gap(seq + 1, st.first_seq - 1, boot)
                open_by_start[g.from_seq] = g
            st.first_seq = seq
        else:
            hit = next((g for g in open_by_start.values() if g.from_seq <= seq <= g.to_seq), None)
            if hit is not None:
                del open_by_start[hit.from_seq]
                if seq > hit.from_seq:
                    open_by_start[hit.from_seq] = Gap(hit.from_seq, seq - 1, hit.boot)
                if seq < hit.to_seq:
                    open_by_start[seq + 1] = Gap(seq + 1, hit.to_seq, hit.boot)
                out.filled.append(Gap(seq, seq, boot))
            elif st.last_boot is not None and boot > st.last_boot:
                # Counter reset (node re-flashed): restart the sequence, no gap, no duplicate.
                st.last_seq, st.last_boot, st.first_seq = seq, boot, seq
            else:
                continue  # duplicate of a message already counted
        out.new_messages += 1
        out.dropped += dropped
    orig = {g.from_seq: g for g in gaps}
    out.deleted_gaps = sorted(s for s, g in orig.items() if open_by_start.get(s) != g)
    out.open_gaps = sorted(
        (g for s, g in open_by_start.items() if orig.get(s) != g), key=lambda g: g.from_seq
    )
    return out
