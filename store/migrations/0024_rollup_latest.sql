-- Latest values from the rollups: each hourly row keeps its hour's newest reading, so the latest
-- value of a series is one primary-key probe (api.queries.registry.LATEST_OF).
ALTER TABLE readings_hourly
    ADD COLUMN last_time timestamptz,
    ADD COLUMN last_value double precision;

-- Rows rolled up before this migration have no last reading yet: mark them for the refresher (the
-- readers probe the raw rows of marked hours meanwhile).
INSERT INTO rollup_dirty (series_id, hour)
SELECT series_id, hour FROM readings_hourly ORDER BY 1, 2
ON CONFLICT DO NOTHING;
