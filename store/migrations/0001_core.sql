-- Core registry, readings hypertable, alerts, commissioners, webhook outbox, dead letters.
-- Applied by `agri db migrate` inside one transaction.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE farms (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9-]{1,32}$'),
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('orchard', 'pig_farm', 'tea_garden', 'pond')),
    lat         double precision CHECK (lat BETWEEN -90 AND 90),
    lon         double precision CHECK (lon BETWEEN -180 AND 180),
    elevation_m double precision,
    tz          text NOT NULL DEFAULT 'Asia/Shanghai',
    meta        jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nodes (
    id          serial PRIMARY KEY,
    farm_id     text NOT NULL REFERENCES farms (id) ON DELETE CASCADE,
    node_id     text NOT NULL CHECK (node_id ~ '^[a-z0-9-]{1,32}$' AND node_id <> 'gw'),
    name        text,
    profile     text,                       -- e.g. orchard-soil, barn-air, pond-water
    config      jsonb NOT NULL DEFAULT '{}',  -- what is published retained on .../config
    lat         double precision,
    lon         double precision,
    last_seen   timestamptz,
    last_seq    bigint,
    last_boot   bigint,
    msgs_received bigint NOT NULL DEFAULT 0,
    dropped_reported bigint NOT NULL DEFAULT 0,  -- readings the node's spool dropped (self-reported)
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (farm_id, node_id)
);

CREATE TABLE metrics (
    name     text PRIMARY KEY,
    unit     text NOT NULL,
    lo       double precision NOT NULL,
    hi       double precision NOT NULL,
    kind     text NOT NULL,
    label_zh text NOT NULL,
    label_en text NOT NULL,
    decimals int NOT NULL DEFAULT 1,
    aggregate text NOT NULL DEFAULT 'mean' CHECK (aggregate IN ('mean', 'sum'))
);

CREATE TABLE series (
    id       serial PRIMARY KEY,
    node_id  int NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    metric   text NOT NULL REFERENCES metrics (name),
    anomaly_state bytea,                    -- serialised streaming-detector state
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (node_id, metric)
);

CREATE TABLE readings (
    time      timestamptz NOT NULL,
    series_id int NOT NULL,
    value     double precision NOT NULL,
    CONSTRAINT readings_series_time_key UNIQUE (series_id, time)
);
SELECT create_hypertable('readings', 'time', chunk_time_interval => interval '1 day');

-- Gaps in a node's message sequence numbers, for data-completeness per node.
CREATE TABLE seq_gaps (
    node_id     int NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    boot        bigint NOT NULL,
    from_seq    bigint NOT NULL,            -- first missing seq
    to_seq      bigint NOT NULL,            -- last missing seq
    detected_at timestamptz NOT NULL DEFAULT now(),
    filled_at   timestamptz,                -- set when the missing messages arrive late
    PRIMARY KEY (node_id, from_seq)
);

CREATE TABLE commissioners (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    phone       text,
    channel     text NOT NULL DEFAULT 'generic' CHECK (channel IN ('generic', 'wecom', 'dingtalk', 'feishu')),
    webhook_url text NOT NULL,
    secret      text,                       -- HMAC key (generic) or robot signing secret
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE farm_commissioners (
    farm_id         text NOT NULL REFERENCES farms (id) ON DELETE CASCADE,
    commissioner_id int NOT NULL REFERENCES commissioners (id) ON DELETE CASCADE,
    min_severity    text NOT NULL DEFAULT 'warning' CHECK (min_severity IN ('info', 'warning', 'critical')),
    PRIMARY KEY (farm_id, commissioner_id)
);

CREATE TABLE alerts (
    id           bigserial PRIMARY KEY,
    farm_id      text NOT NULL REFERENCES farms (id) ON DELETE CASCADE,
    node_id      int REFERENCES nodes (id) ON DELETE SET NULL,
    series_id    int REFERENCES series (id) ON DELETE SET NULL,
    rule         text NOT NULL,             -- e.g. heat_stress, frost, do_low, sensor_stuck, anomaly
    severity     text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message      text NOT NULL,
    value        double precision,
    details      jsonb NOT NULL DEFAULT '{}',
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    acked_at     timestamptz,
    acked_by     text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_farm_started ON alerts (farm_id, started_at DESC);
-- At most one open alert per (farm, node, series, rule).
CREATE UNIQUE INDEX alerts_one_open ON alerts (farm_id, coalesce(node_id, 0), coalesce(series_id, 0), rule)
    WHERE ended_at IS NULL;

CREATE TABLE webhook_deliveries (
    id              bigserial PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    commissioner_id int NOT NULL REFERENCES commissioners (id) ON DELETE CASCADE,
    event           text NOT NULL DEFAULT 'alert.opened',
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    response_code   int,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (alert_id, commissioner_id, event)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- Dead letters: every rejected message or reading, with its reason and the raw payload.
CREATE TABLE rejects (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL,              -- MQTT topic, 'http', 'csv:<file>'
    farm_id     text,
    node_id     text,
    metric      text,
    reading_time timestamptz,
    reason      text NOT NULL,              -- stable short code, e.g. out_of_range
    detail      text NOT NULL,
    raw         bytea
);
CREATE INDEX rejects_received ON rejects (received_at DESC);
CREATE INDEX rejects_node ON rejects (farm_id, node_id, received_at DESC);

CREATE TABLE api_tokens (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    token_hash  text NOT NULL UNIQUE,       -- sha256 of the token; the token is shown once
    scopes      text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'operate', 'admin', 'ingest']),
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at  timestamptz
);
