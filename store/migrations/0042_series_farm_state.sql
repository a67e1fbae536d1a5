-- The alert service's per-series state of the farm rules that run over days (the stuck-probe rule
-- and the slow-trend test of analytics.anomaly.farm): 11 float64 (little-endian), saved with
-- anomaly_state at each checkpoint, so a restart continues them instead of starting over.
ALTER TABLE series ADD COLUMN farm_state bytea;
