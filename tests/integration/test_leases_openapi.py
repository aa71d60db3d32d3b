"""The OpenAPI document describes the lease protocol completely (test_openapi_schemathesis
drives each of its operations against the WSGI app, positive and negative)."""

from __future__ import annotations

from workstream.api.openapi import build_document

LEASE_OPERATIONS = {"leaseJobs", "completeLease", "failLease", "extendLease"}


def test_the_document_has_every_lease_operation() -> None:
    document = build_document(1_000_000)
    operations = [op for path in document["paths"].values() for op in path.values()]
    ids = {op["operationId"] for op in operations if isinstance(op, dict) and "operationId" in op}
    assert LEASE_OPERATIONS <= ids
    assert "LeaseLost" in document["components"]["responses"]
