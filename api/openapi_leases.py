"""The lease protocol's part of the OpenAPI document (api/openapi.py merges it): complete
enough that a worker in another language needs nothing else (examples/node-worker uses only
this)."""

from __future__ import annotations

from typing import Any

from workstream.api.resources.leases import (
    DEFAULT_LEASE_S,
    MAX_ERROR_CHARS,
    MAX_LEASE_QUEUES,
    MAX_PROGRESS_BYTES,
    MAX_TOKEN_CHARS,
    MAX_WAIT_S,
)
from workstream.common.leases import MAX_LEASE_COUNT, MAX_LEASE_S, MIN_LEASE_S

Schema = dict[str, Any]
JSON = "application/json"
NAME_RE = "^[A-Za-z0-9_.-]{1,64}$"
JOB_ID_RE = "^[A-Za-z0-9_.:-]{1,128}$"  # made (32 hex digits) or the client's own

LEASE_LOST = (
    "lease_lost: the lease is stale (the job was taken back and maybe leased again), unknown "
    "(a token of another job, or one this API never handed out, or a job that is gone) or "
    "expired. Nothing was changed; the answer is counted in stale_completions."
)


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*codes: str) -> Schema:
    table = {
        "400": {"$ref": "#/components/responses/BadRequest"},
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "404": {"$ref": "#/components/responses/JobNotFound"},
        "409": {"$ref": "#/components/responses/LeaseLost"},
        "413": {"$ref": "#/components/responses/PayloadTooLarge"},
        "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
        "503": {"$ref": "#/components/responses/RedisUnavailable"},
    }
    return {code: table[code] for code in codes}


def _token() -> Schema:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_TOKEN_CHARS,
        "description": "The lease token from POST /leases (the job's lease number and a "
        "nonce). A string in any other form answers 409 lease_lost.",
    }


def _lease_s(description: str) -> Schema:
    return {
        "type": "number",
        "minimum": MIN_LEASE_S,
        "maximum": MAX_LEASE_S,
        "default": DEFAULT_LEASE_S,
        "description": description,
    }


def _body(properties: Schema, required: list[str]) -> Schema:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }
    return {"required": True, "content": {JSON: {"schema": schema}}}


def _job_id_param() -> Schema:
    return {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": JOB_ID_RE},
        "description": "32 lowercase hex digits; anything else answers 404 job_not_found.",
    }


def lease_schemas() -> Schema:
    return {
        "Lease": {
            "type": "object",
            "required": ["job", "lease", "expires_at"],
            "properties": {
                "job": _ref("Job"),
                "lease": {"type": "string", "description": "Send it with every answer."},
                "parent_results": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "Each parent's id (depends_on) with its result, read when "
                    "the job was leased: {} for a job without parents. A parent that failed or "
                    "was cancelled (on_parent_failure run), whose record expired, or whose "
                    "result would pass 1 MiB of JSON for all parents together, gives null.",
                },
                "expires_at": {
                    "type": "string",
                    "format": "date-time",
                    "description": "When the lease ends unless extended (Redis server time). "
                    "The sweeper then takes the job back as an attempt used, within one "
                    "SWEEPER_INTERVAL.",
                },
            },
        },
        "LeaseGrant": {
            "type": "object",
            "required": ["leases"],
            "properties": {"leases": {"type": "array", "items": _ref("Lease")}},
        },
        "LeaseExtension": {
            "type": "object",
            "required": ["expires_at", "cancel_requested"],
            "properties": {
                "expires_at": {"type": "string", "format": "date-time"},
                "cancel_requested": {
                    "type": "boolean",
                    "description": "An operator asked to cancel the job: stop and answer.",
                },
            },
        },
    }


def lease_responses() -> Schema:
    error = _ref("Error")
    return {"LeaseLost": _json(error, LEASE_LOST)}


def lease_paths() -> Schema:
    job = _ref("Job")
    lease = _body(
        {
            "queues": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_LEASE_QUEUES,
                "uniqueItems": True,
                "items": {"type": "string", "pattern": NAME_RE},
                "description": "Taken in the order given; paused queues are skipped.",
            },
            "consumer": {
                "type": "string",
                "pattern": NAME_RE,
                "description": "The consumer's name: it holds its leases in its own "
                "processing list and shows in GET /workers as http:<consumer>.",
            },
            "count": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_LEASE_COUNT,
                "default": 1,
                "description": "Jobs to lease at most.",
            },
            "wait": {
                "type": "number",
                "minimum": 0,
                "maximum": MAX_WAIT_S,
                "default": 0,
                "description": "Seconds to wait for a first job when none is pending "
                "(long-poll). When too many calls wait already, it answers at once.",
            },
            "lease_s": _lease_s("Seconds the leases last unless extended."),
        },
        ["queues", "consumer"],
    )
    return {
        "/leases": {
            "post": {
                "summary": "Lease pending jobs to run them outside the Python worker.",
                "description": "Each job is started (status processing, one attempt used) "
                "under a lease until expires_at; answer it with complete, fail, or extend "
                "it. A lease that expires unanswered is taken back by the sweeper: retried "
                "with backoff, or failed after max_attempts. Each call is a heartbeat.",
                "operationId": "leaseJobs",
                "requestBody": lease,
                "responses": {
                    "200": _json(
                        _ref("LeaseGrant"), "Leased jobs; an empty list when none came within wait."
                    ),
                    **_errors("400", "401", "413", "415", "503"),
                },
            }
        },
        "/jobs/{job_id}/complete": {
            "parameters": [_job_id_param()],
            "post": {
                "summary": "Record a leased job's result. Sent again under the same lease "
                "(a lost reply), it answers the same.",
                "operationId": "completeLease",
                "requestBody": _body(
                    {"lease": _token(), "result": {"description": "Any JSON value."}},
                    ["lease"],
                ),
                "responses": {
                    "200": _json(job, "The job, completed."),
                    **_errors("400", "401", "404", "409", "413", "415", "503"),
                },
            },
        },
        "/jobs/{job_id}/fail": {
            "parameters": [_job_id_param()],
            "post": {
                "summary": "Record a leased job's failure: retried with backoff while "
                "attempts remain (unless retry is false), else failed for good.",
                "operationId": "failLease",
                "requestBody": _body(
                    {
                        "lease": _token(),
                        "error": {"type": "string", "minLength": 1, "maxLength": MAX_ERROR_CHARS},
                        "retry": {"type": "boolean", "default": True},
                    },
                    ["lease", "error"],
                ),
                "responses": {
                    "200": _json(job, "The job: scheduled or pending (retried), or failed."),
                    **_errors("400", "401", "404", "409", "413", "415", "503"),
                },
            },
        },
        "/jobs/{job_id}/extend": {
            "parameters": [_job_id_param()],
            "post": {
                "summary": "Move a held lease's expiry to now + lease_s and store progress.",
                "operationId": "extendLease",
                "requestBody": _body(
                    {
                        "lease": _token(),
                        "lease_s": _lease_s("Seconds from now the lease lasts."),
                        "progress": {
                            "description": "Any JSON value of at most "
                            f"{MAX_PROGRESS_BYTES} bytes, kept on the job as progress."
                        },
                    },
                    ["lease"],
                ),
                "responses": {
                    "200": _json(_ref("LeaseExtension"), "The lease holds until expires_at."),
                    **_errors("400", "401", "404", "409", "413", "415", "503"),
                },
            },
        },
    }
