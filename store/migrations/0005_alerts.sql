-- Alerts: the committed-batch feed from ingest, the alert service's cursors and state, the alert
-- lifecycle with its transitions, the outbox's attempts, commissioners' language and escalation order,
-- anomaly scores and QC flags.

-- One row per committed ingest batch, written in the batch's own transaction (store/writer.py):
-- which nodes got readings and each node's time range. `xid` orders commits safely: a tailer only
-- consumes rows whose transaction id lies below the oldest still-running transaction
-- (pg_snapshot_xmin), so a transaction that commits late is never skipped.
CREATE TABLE alert_feed (
    id         bigserial PRIMARY KEY,
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    node_ids   int[] NOT NULL,
    t_from     timestamptz[] NOT NULL,
    t_to       timestamptz[] NOT NULL,
    n_rows     int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_feed_xid ON alert_feed (xid, id);

CREATE FUNCTION alert_feed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('agri_alert_feed', '');
    RETURN NULL;
END $$;
CREATE TRIGGER alert_feed_notify AFTER INSERT ON alert_feed
    FOR EACH STATEMENT EXECUTE FUNCTION alert_feed_notify();

-- Per alert worker (partition "i/N"): every feed row up to (last_xid, last_id) has been evaluated.
CREATE TABLE alert_cursors (
    worker     text PRIMARY KEY,
    last_xid   xid8 NOT NULL DEFAULT '0',
    last_id    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Evaluator state per (worker partition, key): rule episodes, per-series watermarks.
CREATE TABLE alert_state (
    worker     text NOT NULL,
    key        text NOT NULL,
    state      jsonb NOT NULL,
    PRIMARY KEY (worker, key)
);

-- Lifecycle: open -> acknowledged -> resolved. `ended_at IS NULL` keeps meaning "not resolved", so the
-- one-open-alert-per-rule-and-subject index of 0001 still holds.
ALTER TABLE alerts
    ADD COLUMN subject text NOT NULL DEFAULT '',
    ADD COLUMN status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    ADD COLUMN resolved_by text,
    ADD COLUMN escalation_level int NOT NULL DEFAULT 0,
    ADD COLUMN escalate_at timestamptz,
    ADD COLUMN parent_id bigint REFERENCES alerts (id) ON DELETE SET NULL,
    ADD COLUMN late boolean NOT NULL DEFAULT false,
    ADD COLUMN flaps int NOT NULL DEFAULT 0,
    ADD COLUMN last_value_at timestamptz;
CREATE INDEX alerts_open ON alerts (status) WHERE ended_at IS NULL;
-- One open alert per rule and subject: a farm's gateways are subjects without a node.
DROP INDEX alerts_one_open;
CREATE UNIQUE INDEX alerts_one_open ON alerts (farm_id, coalesce(node_id, 0), coalesce(series_id, 0), rule, subject)
    WHERE ended_at IS NULL;
CREATE INDEX alerts_escalate ON alerts (escalate_at) WHERE status = 'open';

CREATE TABLE alert_events (
    id       bigserial PRIMARY KEY,
    alert_id bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at       timestamptz NOT NULL DEFAULT now(),
    kind     text NOT NULL CHECK (kind IN ('opened', 'acknowledged', 'resolved', 'escalated', 'attached',
                                           'suppressed', 'late')),
    by_whom  text NOT NULL,
    details  jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, at);

-- Commissioners: message language; per farm the escalation order (0: told when an alert opens,
-- 1: told when it is still unacknowledged after the escalation delay, 2: after twice that, ...).
ALTER TABLE commissioners
    ADD COLUMN language text NOT NULL DEFAULT 'zh' CHECK (language IN ('zh', 'en')),
    ADD CONSTRAINT commissioners_name_key UNIQUE (name);
ALTER TABLE farm_commissioners
    ADD COLUMN escalation_order int NOT NULL DEFAULT 0 CHECK (escalation_order BETWEEN 0 AND 9);

-- Outbox: a delivery may be merged into another one to the same robot (rate limits); every attempt
-- is recorded.
ALTER TABLE webhook_deliveries
    ALTER COLUMN alert_id DROP NOT NULL,         -- a summary message belongs to a farm, not one alert
    ADD COLUMN farm_id text REFERENCES farms (id) ON DELETE CASCADE,
    ADD COLUMN merged_into bigint REFERENCES webhook_deliveries (id) ON DELETE SET NULL,
    ADD COLUMN summary_key text;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_status_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'merged'));

CREATE TABLE delivery_attempts (
    id            bigserial PRIMARY KEY,
    delivery_id   bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at            timestamptz NOT NULL DEFAULT now(),
    ok            boolean NOT NULL,
    response_code int,
    error_code    text,
    latency_ms    double precision,
    error         text
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, at);

-- Analytics results for the API and dashboard: anomaly scores above a floor, QC flags not "pass".
CREATE TABLE anomaly_scores (
    time      timestamptz NOT NULL,
    series_id int NOT NULL,
    score     real NOT NULL,
    PRIMARY KEY (series_id, time)
);
SELECT create_hypertable('anomaly_scores', 'time', chunk_time_interval => interval '7 days');

CREATE TABLE qc_flags (
    time      timestamptz NOT NULL,
    series_id int NOT NULL,
    flag      smallint NOT NULL CHECK (flag IN (3, 4)),  -- QARTOD suspect / fail
    tests     text NOT NULL,
    PRIMARY KEY (series_id, time)
);
SELECT create_hypertable('qc_flags', 'time', chunk_time_interval => interval '7 days');

-- The alert service's per-series watermark: the newest reading time evaluated (Unix seconds).
ALTER TABLE series ADD COLUMN alert_watermark double precision;
