-- API: registry fields the HTTP API serves (farm boundary, retiring, gateways, firmware version),
-- per-farm API tokens, and the hourly / daily rollups the application maintains.

-- Farm boundary as a GeoJSON Polygon or MultiPolygon (WGS 84), validated by the API.
ALTER TABLE farms ADD COLUMN boundary jsonb;
ALTER TABLE farms ADD COLUMN retired_at timestamptz;

ALTER TABLE nodes ADD COLUMN IF NOT EXISTS firmware_version text;
ALTER TABLE nodes ADD COLUMN retired_at timestamptz;

CREATE TABLE gateways (
    farm_id     text NOT NULL REFERENCES farms (id) ON DELETE CASCADE,
    gateway_id  text NOT NULL CHECK (gateway_id ~ '^[a-z0-9-]{1,32}$'),
    name        text,
    lat         double precision CHECK (lat BETWEEN -90 AND 90),
    lon         double precision CHECK (lon BETWEEN -180 AND 180),
    last_seen   timestamptz,
    meta        jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz,
    PRIMARY KEY (farm_id, gateway_id)
);

-- A token limited to some farms (a commissioner's); NULL: every farm.
ALTER TABLE api_tokens ADD COLUMN farms text[];

-- Rollups. Writers of `readings` mark the UTC hours they touch in `rollup_dirty` in the same
-- transaction (store.rollup.mark_dirty); the refresher (store.rollup.refresh) takes marks with
-- FOR UPDATE SKIP LOCKED, deletes them and recomputes those hours and the farm-local days that
-- contain them, all in one transaction. Readers combine clean rollup rows with raw aggregation of
-- the hours still marked, so a query is right even before the refresher has run.
CREATE TABLE rollup_dirty (
    series_id int NOT NULL,
    hour      timestamptz NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (series_id, hour)
);

CREATE TABLE readings_hourly (
    series_id int NOT NULL,
    hour      timestamptz NOT NULL,          -- UTC hour start
    n         int NOT NULL,
    sum       double precision NOT NULL,
    min       double precision NOT NULL,
    max       double precision NOT NULL,
    PRIMARY KEY (series_id, hour)
);

CREATE TABLE readings_daily (
    series_id int NOT NULL,
    day       date NOT NULL,                 -- local date in the farm's time zone `tz`
    tz        text NOT NULL,
    n         int NOT NULL,
    sum       double precision NOT NULL,
    min       double precision NOT NULL,
    max       double precision NOT NULL,
    PRIMARY KEY (series_id, day)
);

-- Everything stored before this migration still needs its rollups.
INSERT INTO rollup_dirty (series_id, hour)
SELECT DISTINCT series_id, time_bucket(interval '1 hour', time) FROM readings
ON CONFLICT DO NOTHING;
