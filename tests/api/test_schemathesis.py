"""Schemathesis over the served OpenAPI schema: generated requests to every operation, with an
admin token, must never get a server error (5xx) or a response that breaks the documented schema.
Bounded (a few examples per operation) to stay within about a minute.

Driven through Schemathesis' Python API (operations as Hypothesis strategies): its pytest plugin's
lazy fixture loader does not run under pytest 9.
"""

from __future__ import annotations

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from store.registry import ensure_series, upsert_node
from tests.api.conftest import ADMIN_SECRET, Tokens

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = 8


def test_no_server_error_and_responses_match_the_schema(base_url: str, db_url: str, tok: Tokens) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        n = upsert_node(conn, "farm-a", "n-1")
        ensure_series(conn, n.pk, "air_t")
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    operations = 0
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        op = result.ok()
        operations += 1

        @given(case=op.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            resp = case.call_and_validate(
                headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
                checks=[not_a_server_error, response_schema_conformance],
                timeout=30,
            )
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{op.label}: {str(exc)[:1500]}")
    assert operations >= 30
    print("responses by status:", dict(sorted(statuses.items())))
    assert sum(statuses.values()) >= 3 * operations and statuses.get(200, 0) > operations
    assert not failures, "\n\n".join(failures)
