"""Errors of the sky layer, split by who is at fault (as in psycopg's ``errors``)."""

from __future__ import annotations


class SkyError(Exception):
    """Base of every error raised on purpose by ``sky``."""


class InputError(SkyError, ValueError):
    """A file, item or argument is wrong; the message names it and says why. Not worth retrying."""


class SourceUnavailable(SkyError):
    """A catalog or an asset could not be reached now (network, server error): retry later."""
