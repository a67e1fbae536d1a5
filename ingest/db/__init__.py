"""ingest/db."""
