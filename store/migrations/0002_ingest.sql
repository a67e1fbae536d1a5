-- Ingest: idempotent dead letters, data completeness per node.

-- A redelivered message (broker retry, worker crash before its ack, the same node message arriving
-- directly and through a gateway) must not add its rejects twice. The writer derives dedup_key from
-- the message bytes and the reading's position; rows from other sources (HTTP, CSV) leave it NULL.
ALTER TABLE rejects ADD COLUMN dedup_key bytea;
CREATE UNIQUE INDEX rejects_dedup_key ON rejects (dedup_key);

-- Open gaps per node, the rows the completeness view sums.
CREATE INDEX seq_gaps_open ON seq_gaps (node_id) WHERE filled_at IS NULL;

-- First sequence number seen per node, so completeness has a denominator.
ALTER TABLE nodes ADD COLUMN first_seq bigint;

-- Data completeness per node: messages missing (open gaps) out of the span of sequence numbers seen.
CREATE VIEW node_completeness AS
SELECT n.id AS node_pk,
       n.farm_id,
       n.node_id,
       n.first_seq,
       n.last_seq,
       n.msgs_received,
       n.dropped_reported,
       coalesce(g.missing, 0) AS msgs_missing,
       CASE WHEN n.last_seq IS NULL THEN NULL
            ELSE 1.0 - coalesce(g.missing, 0)::float8
                       / greatest(n.msgs_received + coalesce(g.missing, 0), 1)
       END AS completeness
FROM nodes n
LEFT JOIN (
    SELECT node_id, sum(to_seq - from_seq + 1)::bigint AS missing
    FROM seq_gaps
    WHERE filled_at IS NULL
    GROUP BY node_id
) g ON g.node_id = n.id;
