"""Test configuration: fixtures for the real TimescaleDB and Mosquitto live in tests/fixtures/."""

pytest_plugins = ["tests.fixtures.pg", "tests.fixtures.mqtt"]
