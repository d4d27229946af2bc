"""A bounded property pass over the API's own OpenAPI schema (schemathesis): valid and
invalid requests to every operation against the real daemon; none may get a 5xx, and
every answer must match what the schema documents (status, content type, body)."""
from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.fixtures_web import settle

pytest_plugins = ["tests.fixtures_web"]
EXAMPLES = 8             # per operation and mode: the whole pass takes ~10 s here
SKIP = {"/api/events", "/api/meter"}   # endless streams; test_web_api.py, test_web_pictures.py cover them


def fuzz(operation, mode, base_url: str, daemon) -> list[int]:
    """Run one operation's generated cases; the status codes seen ([] if none can be made)."""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                                   status_code_conformance)

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    statuses: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        try:
            response = case.call(base_url=base_url, timeout=60)
            statuses.append(response.status_code)
            case.validate_response(response, checks=checks)
        finally:
            settle(daemon)   # a trigger or say must not turn every later case into a 409
    try:
        run()
    except Unsatisfiable:   # an operation without inputs has no invalid request to make
        assert mode.value == "negative" and not statuses
    return sorted(set(statuses))


def test_no_operation_answers_5xx_or_off_schema(web_server, daemon):
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(web_server.url + "openapi.json")
    started, tried = time.monotonic(), {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIP:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            seen = fuzz(operation, mode, web_server.url.rstrip("/"), daemon)
            if seen:
                tried[f"{operation.method.upper()} {operation.path} {mode.value}"] = seen
    print("statuses seen:", tried)
    assert len(tried) >= 10, tried   # every operation was exercised, most both ways
    assert time.monotonic() - started < 90
