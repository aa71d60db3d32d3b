"""The OpenAPI document describes the lease protocol completely: schemathesis drives its four
operations against the WSGI app (real Redis), positive and negative, and every answer conforms.
(test_openapi_schemathesis runs them too, among all; this runs them alone, for a quick check.)"""

from __future__ import annotations

import pytest
import schemathesis

from tests.integration import test_openapi_schemathesis
from tests.integration.api_fixtures import App
from tests.integration.test_openapi_schemathesis import MODES, run_operation
from workstream.api.openapi import build_document

# The app whose long-polls end at once, bound here so that pytest finds it for this module.
app = test_openapi_schemathesis.app

LEASE_OPERATIONS = {"leaseJobs", "completeLease", "failLease", "extendLease"}


def test_the_document_has_every_lease_operation() -> None:
    document = build_document(1_000_000)
    operations = [op for path in document["paths"].values() for op in path.values()]
    ids = {op["operationId"] for op in operations if isinstance(op, dict) and "operationId" in op}
    assert LEASE_OPERATIONS <= ids
    assert "LeaseLost" in document["components"]["responses"]


@pytest.mark.timeout(180)
def test_every_lease_operation_conforms_to_the_document(app: App) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())  # type: ignore[union-attr]
        if op.definition.raw.get("operationId") in LEASE_OPERATIONS
    ]
    assert len(operations) == len(LEASE_OPERATIONS)
    failures: list[str] = []
    for operation in operations:
        for mode in MODES:
            run_operation(operation, mode, failures)
    assert not failures, "\n\n".join(failures[:20])
