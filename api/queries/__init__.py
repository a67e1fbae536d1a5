"""Query functions over the platform's database: psycopg connection in, pydantic models out.

Nothing here knows about HTTP: a bad argument raises :class:`QueryError` subclasses (the API maps
them to 4xx), so the dashboard and scripts can call these directly.
"""

from api.queries.errors import Conflict, InvalidArgument, NotFound, QueryError

__all__ = ["Conflict", "InvalidArgument", "NotFound", "QueryError"]
