"""Errors of the sky layer, split by who is at fault (as in psycopg's ``errors``)."""

from __future__ import annotations


class SkyError(Exception):
    """Base of every error raised on purpose by ``sky``."""


class InputError(SkyError, ValueError):
    """A file, item or argument is wrong; the message names it and says why. Not worth retrying."""


class BlockImportError(InputError):
    """Features of a block file were refused; ``problems`` lists one line per bad feature."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(
            f"{source}: {len(problems)} bad feature(s), nothing imported:\n  " + "\n  ".join(problems)
        )


class SourceUnavailable(SkyError):
    """A catalog or an asset could not be reached now (network, server error): retry later."""
