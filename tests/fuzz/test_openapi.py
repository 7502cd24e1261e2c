"""
Schemathesis against the daemon's own ``GET /api/openapi.json``: requests drawn from the
document for every operation, sent to a real daemon process as an admin. No 5xx, and
every answer is one the document promises (status code, content type, body schema).
"""

from __future__ import annotations

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from support import HOSTILE, PASSWORD, record_outcome, run_termrooms, start_daemon

EXAMPLES = 100 if HOSTILE else 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FAILURE_MARKS = ('"log_failure"', '"isError": true', "Unhandled", "Traceback")


def fresh_token(base_url: str) -> str:
    """A new session of the admin: an operation may end the previous one (logout)."""
    response = requests.post(
        base_url + "/api/auth/login", json={"username": "root", "password": PASSWORD}, timeout=60
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def fuzz_operation(operation, base_url: str, headers: dict[str, str]) -> int:
    """Send EXAMPLES drawn cases of ``operation``, checked; how many were sent."""
    sent = 0
    # Valid requests, and requests the document says are wrong (answered 4xx).
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=cases)
    def call(case):
        nonlocal sent
        sent += 1
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

    call()
    return sent


def test_every_operation_answers_as_its_document_says(fresh_migrated_database_url, tmp_path):
    url = fresh_migrated_database_url
    run_termrooms(
        ["create-user", "root", "--admin", "--password-stdin", "--database-url", url],
        input=PASSWORD + "\n",
        check=True,
    )
    daemon = start_daemon(["--database-url", url, "--no-migrate", "--no-rate-limits"], tmp_path)
    try:
        schema = schemathesis.openapi.from_url(
            daemon.base_url + "/api/openapi.json", wait_for_schema=60
        )
        operations = [result.ok() for result in schema.get_all_operations()]
        # The account-ending operations last, so the others keep a live admin.
        operations.sort(
            key=lambda op: (op.method.upper() == "DELETE" and op.path == "/api/auth/me", op.path)
        )
        failures, calls = [], 0
        for operation in operations:
            headers = {"Authorization": f"Bearer {fresh_token(daemon.base_url)}"}
            try:
                calls += fuzz_operation(operation, daemon.base_url, headers)
            except (Exception, BaseExceptionGroup) as e:  # every operation is tried
                failures.append(f"{operation.method.upper()} {operation.path}: {e}")
        assert not failures, "\n\n".join(failures)
        health = requests.get(daemon.base_url + "/health", timeout=30)
        assert health.status_code == 200, health.text
        log = daemon.log()
        assert not [mark for mark in FAILURE_MARKS if mark in log], log[-3000:]
    finally:
        daemon.stop()
    record_outcome(
        "fuzz/test_openapi::test_every_operation_answers_as_its_document_says",
        what="every operation of /api/openapi.json answers as the document says",
        load=f"{calls} schemathesis requests over {len(operations)} operations on a real daemon",
        faults="schema-drawn valid and schema-violating path, query and body values for "
        "every operation, as an admin",
        outcome="no 5xx; every status code, content type and body documented; no "
        "unhandled failure in the daemon's log",
        sent=calls,
    )
