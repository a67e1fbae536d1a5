-- Covering index of the hourly rollup: bucket queries (api.queries.readings._HOURLY) and the
-- latest-value probe (api.queries.registry.LATEST_OF) read only the index, never the heap. The
-- refresher writes the table an hour batch at a time across all series, so one series' consecutive
-- hours sit on different heap pages: 72,000 hourly buckets cost ~72,000 page visits through the
-- primary key and ~900 through this index (measured in docs/benchmarks.md, "HTTP API").
CREATE INDEX readings_hourly_cover ON readings_hourly (series_id, hour)
    INCLUDE (n, sum, min, max, last_time, last_value);
