"""Schemathesis drives every operation of /openapi.json against the WSGI app (real Redis):
no 5xx, and every status, content type, header and body conforms to the document."""

from __future__ import annotations

import threading
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
from workstream.api.openapi import build_document
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


def _operation_ids() -> list[str]:
    """Every operation but the document's own (schemathesis loads it, and does not drive it)."""
    document = build_document(1_000_000)
    return sorted(
        op["operationId"]
        for route, path in document["paths"].items()
        for op in path.values()
        if isinstance(op, dict) and "operationId" in op and route != "/openapi.json"
    )


def test_every_operation_has_an_operation_id_so_that_each_is_driven_below() -> None:
    document = build_document(1_000_000)
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    operations = [
        op for path in document["paths"].values() for m, op in path.items() if m in methods
    ]
    assert len(operations) == len(_operation_ids()) + 1 == len(set(_operation_ids())) + 1


# One test per operation: each has its own timeout, and parallel test processes share them out.
@pytest.mark.timeout(120)
@pytest.mark.parametrize("operation_id", _operation_ids())
def test_each_operation_conforms_to_the_openapi_document(app: App, operation_id: str) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    (operation,) = (
        op
        for op in (result.ok() for result in schema.get_all_operations())  # type: ignore[union-attr]
        if op.definition.raw.get("operationId") == operation_id
    )
    failures: list[str] = []
    examples = sum(run_operation(operation, mode, failures) for mode in MODES)
    assert examples > 0
    assert not failures, "\n\n".join(failures[:20])
