"""The kernel: wire protocol, metric catalog, settings, logging, MQTT helpers, backoff, payload decoding.

It imports the standard library, pydantic, paho, prometheus_client and the pure ``analytics`` core,
and nothing else of this project: every service and the app layer build on it.
"""
