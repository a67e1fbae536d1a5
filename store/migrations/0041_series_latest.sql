-- The newest hourly rollup row of each series, kept by the refresher in the same transaction as
-- readings_hourly (store.rollup.refresh): the latest value of 1,000 series is one join instead of
-- 1,000 index probes. A series marked dirty at or after this hour is read from its raw rows.
CREATE TABLE series_latest (
    series_id  int PRIMARY KEY REFERENCES series (id) ON DELETE CASCADE,
    hour       timestamptz NOT NULL,
    last_time  timestamptz,
    last_value double precision
);
INSERT INTO series_latest (series_id, hour, last_time, last_value)
SELECT DISTINCT ON (series_id) series_id, hour, last_time, last_value
FROM readings_hourly ORDER BY series_id, hour DESC;
