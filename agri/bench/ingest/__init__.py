"""`agri bench ingest`: load generator, /proc CPU accounting, COPY baseline, orchestration."""
