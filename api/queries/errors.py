"""Errors of the query layer, split by what the caller did wrong (the API maps each to a status)."""

from __future__ import annotations


class QueryError(Exception):
    """Base: the request cannot be answered as asked; ``str()`` says why, naming the field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(QueryError):
    """The farm, node, series or row does not exist (or is not visible to the caller)."""


class InvalidArgument(QueryError):
    """An argument is malformed or out of range."""


class Conflict(QueryError):
    """The change contradicts what is stored (duplicate id, retired object, wrong state)."""
