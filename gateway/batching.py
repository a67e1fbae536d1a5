"""Batch planning and envelopes. Pure: spool rows in, batch ranges and bytes out.

A batch is a contiguous range of spool row ids. Its id is derived from the range and the spool's
epoch (``{gateway}-{epoch}-{first}-{last}``) and the range is recorded in the spool before the
first publish, so a re-send after a crash carries the same id and (minus rows dropped by the size
bound meanwhile) the same messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.spool import BatchRange, Row
from kernel.protocol import MAX_BATCH_BYTES, encode_batch


def batch_id(gateway: str, epoch: str, first_id: int, last_id: int) -> str:
    return f"{gateway}-{epoch}-{first_id}-{last_id}"


def plan(
    head: Sequence[tuple[int, float, int]],
    *,
    max_messages: int,
    max_bytes: int,
    linger_s: float,
    now: float,
) -> tuple[int, int] | None:
    """Choose the next batch from ``head`` = (id, received, size) of the oldest un-batched rows.

    ``head`` should hold up to ``max_messages + 1`` rows, so a full batch is recognised. A batch
    takes rows while it stays within ``max_messages`` and ``max_bytes`` (one row always fits); a
    partial batch goes out only once its oldest row has waited ``linger_s``.
    Returns (first id, last id) or None (nothing to send yet).
    """
    if not head:
        return None
    n = size = 0
    for _rid, _received, sz in head:
        if n >= max_messages or (n > 0 and size + sz > max_bytes):
            break
        n += 1
        size += sz
    full = n < len(head)  # the next row did not fit: the batch cannot grow
    if not full and now - head[0][1] < linger_s:
        return None
    return head[0][0], head[n - 1][0]


def envelope(gateway: str, farm: str, bid: str, rows: Sequence[Row]) -> bytes:
    """The zlib-compressed envelope for ``rows`` (invalid rows travel as ``invalid`` entries)."""
    messages = [(r.node, r.payload) for r in rows if r.invalid is None]
    invalid = [(r.node, r.invalid, r.payload) for r in rows if r.invalid is not None]
    return encode_batch(gateway, farm, bid, messages, invalid)


def build(gateway: str, farm: str, epoch: str, rows: Sequence[Row]) -> tuple[BatchRange, bytes, list[Row]]:
    """Envelope for as many of ``rows`` (from the front) as fit the protocol's size limit.

    Returns the batch range, its envelope and the rows it covers. The planner's byte cap keeps
    envelopes far below the limit; halving is a guard for pathological payloads.
    """
    if not rows:
        raise ValueError("a batch needs at least one row")
    take = list(rows)
    while True:
        br = BatchRange(batch_id(gateway, epoch, take[0].id, take[-1].id), take[0].id, take[-1].id)
        data = envelope(gateway, farm, br.batch_id, take)
        if len(data) <= MAX_BATCH_BYTES or len(take) == 1:
            return br, data, take
        take = take[: len(take) // 2]
