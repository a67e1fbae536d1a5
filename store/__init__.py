"""The database layer: schema migrations, registry statements, the COPY writer (kernel + psycopg).

Every service that touches TimescaleDB (ingest, alerts, api, sky) goes through this package.
"""
