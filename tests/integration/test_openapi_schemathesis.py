"""Schemathesis drives every operation of /openapi.json against the WSGI app (real Redis):
no 5xx, and every status, content type, header and body conforms to the document."""

from __future__ import annotations

import threading
import time
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.api_fixtures import App
from workstream.api.app import create_app
from workstream.common.settings import Settings
from workstream.common.store import JobStore


@pytest.fixture
def app(settings: Settings, store: JobStore) -> App:
    """The app as it shuts down: every long-poll ends at once (POST /leases on an empty queue
    would hold each generated `wait` of up to 60 s); everything else answers as usual."""
    stopping = threading.Event()
    stopping.set()
    return create_app(settings, store, stopping=stopping)


MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


def run_operation(operation: Any, mode: Any, failures: list[str]) -> int:
    calls = 0

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def exercise(case: Any) -> None:
        nonlocal calls
        calls += 1
        try:
            case.call_and_validate(checks=CHECKS)
        except Exception as ex:  # collect every operation's failures, then report them all
            failures.append(f"{operation.label} [{mode.value}]: {type(ex).__name__}: {ex}"[:2000])

    try:
        exercise()
    except hypothesis.errors.Unsatisfiable:
        # Negative mode has nothing to break in an operation without parameters or body.
        assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
    return calls


@pytest.mark.timeout(180)
def test_every_operation_conforms_to_the_openapi_document(app: App) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    failures: list[str] = []
    started = time.monotonic()
    examples = sum(run_operation(op, mode, failures) for op in operations for mode in MODES)
    print(  # noqa: T201 - the figures are the point of this test
        f"\nschemathesis: operations={len(operations)} examples={examples} "
        f"failures={len(failures)} in {time.monotonic() - started:.1f}s"
    )
    assert not failures, "\n\n".join(failures[:20])
