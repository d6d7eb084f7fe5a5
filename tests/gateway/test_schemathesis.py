"""Property-based tests of the gateway's HTTP API from its own OpenAPI description: whatever the
request schemathesis generates for each operation (with a valid token), never a server error,
and every response conforms to the schema (status code and body)."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.gateway.conftest import Sandbox

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.status_code_conformance,
]


def test_no_server_errors_and_responses_match_the_schema(sandbox: Sandbox) -> None:
    schema = schemathesis.openapi.from_url(f"{sandbox.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {op.label for op in operations} >= {
        "GET /api/me",
        "POST /api/projects/{project}/queries",
        "GET /api/jobs/{job_id}",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def exercise(case: schemathesis.Case[Any]) -> None:
            response = case.call(headers={"Authorization": f"Bearer {sandbox.token}"}, timeout=60)
            case.validate_response(response, checks=CHECKS)

        exercise()
