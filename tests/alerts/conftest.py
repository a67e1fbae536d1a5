"""Fixtures of the alert tests."""

from tests.fixtures.receiver import receiver  # noqa: F401
