"""The central alert service: feed from ingest -> rules -> alert lifecycle -> outbox -> webhooks."""
