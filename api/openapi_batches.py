"""The batches' part of the OpenAPI document (api/openapi.py merges it)."""

from __future__ import annotations

from typing import Any

from workstream.api.openapi_parts import JSON, TIME, Schema
from workstream.api.openapi_parts import error_response as _error
from workstream.api.openapi_parts import json_response as _json
from workstream.api.openapi_parts import ref as _ref
from workstream.common.batches import FAILED_IDS_MAX, LIVE_STATUSES, MAX_BATCH_JOBS, STATES
from workstream.common.jobs import MAX_ATTEMPTS_LIMIT, MAX_TIMEOUT_S
from workstream.common.store import MAX_BATCH

ID_RE = "^[0-9a-f]{32}$"


def _callback() -> Schema:
    return {
        "type": "object",
        "description": "A job created when the batch settles (every member ended and the batch "
        "sealed), by the script that ends its last member: exactly once. Its payload is this "
        "payload with `batch` added: {id, total, completed, failed, cancelled, failed_ids (at "
        f"most {FAILED_IDS_MAX})}}. Capacity does not apply to it.",
        "required": ["type"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
            "payload": {"type": "object", "description": "Its `batch` key is reserved."},
            "queue": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
            "max_attempts": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS_LIMIT},
            "timeout": {"type": "number", "minimum": 0.001, "maximum": MAX_TIMEOUT_S},
        },
    }


def _callback_info() -> Schema:
    return {
        "anyOf": [
            {
                "type": "object",
                "required": ["type", "queue", "job_id", "created"],
                "properties": {
                    "type": {"type": "string"},
                    "queue": {"type": "string"},
                    "job_id": {"type": "string", "description": "Chosen when the batch was."},
                    "created": {"type": "boolean", "description": "The job exists."},
                },
            },
            {"type": "null"},
        ]
    }


def _batch() -> Schema:
    count = {"type": "integer", "minimum": 0}
    return {
        "type": "object",
        "required": [
            "id",
            "state",
            "total",
            "counts",
            "statuses",
            "progress",
            "on_complete",
            "on_success",
        ],
        "properties": {
            "id": {"type": "string", "pattern": ID_RE},
            "state": {
                "type": "string",
                "enum": list(STATES),
                "description": "open: takes jobs (POST /batches/{id}/jobs); sealed: takes no "
                "more; settled: every member ended, callbacks created (the record then expires "
                "after RESULT_TTL).",
            },
            "total": {**count, "maximum": MAX_BATCH_JOBS},
            "counts": {
                "type": "object",
                "description": "Members by outcome; active: not yet ended (waiting, scheduled, "
                "pending or processing). A member's first ending counts (an operator retry of a "
                "failed member does not count it again).",
                "required": ["active", "completed", "failed", "cancelled"],
                "properties": {
                    "active": count,
                    "completed": count,
                    "failed": count,
                    "cancelled": count,
                },
            },
            "statuses": {
                "description": "Members by their status now (they add up to total), kept by "
                "the scripts that move members, so reading them costs the same for any size. "
                "An operator retry moves a failed member back to pending here while counts "
                "keeps its first ending. A member whose record expired (RESULT_TTL) or was "
                "deleted stays in its last status. null for a batch recorded before these "
                "counts existed.",
                "anyOf": [
                    {
                        "type": "object",
                        "required": [status.value for status in LIVE_STATUSES],
                        "properties": {status.value: count for status in LIVE_STATUSES},
                        "additionalProperties": False,
                    },
                    {"type": "null"},
                ],
            },
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "created_at": TIME,
            "sealed_at": TIME,
            "settled_at": TIME,
            "on_complete": _callback_info(),
            "on_success": _callback_info(),
            "failed_ids": {"type": "array", "items": {"type": "string"}},
        },
    }


def _entries() -> Schema:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["id", "status", "created"],
            "properties": {
                "id": {"type": "string"},
                "status": _ref("JobStatus"),
                "created": {"type": "boolean"},
            },
        },
    }


def batch_schemas() -> dict[str, Schema]:
    return {"Batch": _batch(), "BatchCallback": _callback()}


def batch_paths(op: Any) -> Schema:
    """`op(summary, responses, **extra)` is api/openapi.py's operation builder."""
    error = _ref("Error")
    param = {
        "name": "batch_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": ID_RE},
        "description": "32 lowercase hex digits; anything else answers 404 batch_not_found.",
    }
    idem = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
        "description": "The call sent again with the same key adds nothing twice: each entry "
        "gets a key derived from it (entries may then carry no idempotency_key of their own); "
        "on POST /batches the key also chooses the batch id.",
    }
    not_found = {"404": _json(error, "batch_not_found.")}
    body_errors = {
        "400": _error("BadRequest"),
        "413": _error("PayloadTooLarge"),
        "415": _error("UnsupportedMediaType"),
        "422": _error("IdempotencyConflict"),
        "429": _error("QueueFull"),
    }
    jobs = {
        "type": "array",
        "maxItems": MAX_BATCH,
        "items": _ref("JobSubmission"),
        "description": f"At most {MAX_BATCH} a call, {MAX_BATCH_JOBS} in a batch; all or "
        "nothing (capacity, bounds and idempotency as POST /jobs/batch). An entry naming an "
        "existing job (id or idempotency key) must already be a member: 409 job_not_in_batch.",
    }
    conflict = _json(
        error,
        "batch_sealed (the batch takes no more jobs), batch_too_large, job_not_in_batch, "
        "duplicate_job, too_many_queues or too_many_types. Nothing was written.",
    )
    page = {
        "type": "object",
        "required": ["batches", "next_cursor"],
        "properties": {
            "batches": {"type": "array", "items": _ref("Batch")},
            "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    }
    detail = {
        "allOf": [
            _ref("Batch"),
            {
                "type": "object",
                "required": ["jobs", "next_cursor"],
                "properties": {
                    "jobs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "status"],
                            "properties": {
                                "id": {"type": "string"},
                                "status": {"anyOf": [_ref("JobStatus"), {"type": "null"}]},
                            },
                        },
                        "description": "Members in the order they joined; status null: the "
                        "record expired.",
                    },
                    "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
            },
        ]
    }
    created = {
        "allOf": [
            _ref("Batch"),
            {"type": "object", "required": ["jobs"], "properties": {"jobs": _entries()}},
        ]
    }
    location = {"Location": {"schema": {"type": "string"}, "description": "/batches/<id>"}}
    limit = {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
    }
    cursor = {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}}
    return {
        "/batches": {
            "post": op(
                "Create a batch: its jobs, its record and its callbacks in one call. With jobs "
                'and without "open": true it is sealed at once; otherwise open for '
                "POST /batches/{id}/jobs until POST /batches/{id}/seal. With QUEUE_SHARDS the "
                "batch lives in its jobs' shard (its id `<shard>:<32 hex>` for a named one; "
                "empty: the default shard) and later jobs must be of that shard (400).",
                {
                    "201": _json(created, "Created.", location),
                    "200": _json(created, "The same Idempotency-Key again: the batch as is."),
                    "409": conflict,
                    **body_errors,
                },
                operationId="createBatch",
                parameters=[idem],
                requestBody={
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "jobs": jobs,
                                    "open": {"type": "boolean", "default": False},
                                    "on_complete": _ref("BatchCallback"),
                                    "on_success": {
                                        **_ref("BatchCallback"),
                                        "description": "Created only when every member completed.",
                                    },
                                },
                            }
                        }
                    },
                },
            ),
            "get": op(
                "List batches, newest first (cursor-paged), of every shard.",
                {"200": _json(page, "A page."), "400": _error("BadRequest")},
                operationId="listBatches",
                parameters=[limit, cursor],
            ),
        },
        "/batches/{batch_id}": {
            "get": op(
                "A batch: state, counts by outcome and by status now, progress, callbacks, and "
                "a page of its "
                "member ids with their status (cursor: the offset the last page returned).",
                {"200": _json(detail, "The batch."), "400": _error("BadRequest"), **not_found},
                operationId="getBatch",
                parameters=[param, limit, cursor],
            )
        },
        "/batches/{batch_id}/jobs": {
            "post": op(
                "Add jobs to an open batch (all or nothing).",
                {
                    "201": _json(
                        {
                            "type": "object",
                            "required": ["batch", "added", "jobs"],
                            "properties": {
                                "batch": {"type": "string"},
                                "added": {"type": "integer"},
                                "jobs": _entries(),
                            },
                        },
                        "Added (200: every entry was already a member, a retried call).",
                    ),
                    "200": _json({"type": "object"}, "Nothing new: a retried call."),
                    "409": conflict,
                    **not_found,
                    **body_errors,
                },
                operationId="addBatchJobs",
                parameters=[param, idem],
                requestBody={
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "required": ["jobs"],
                                "additionalProperties": False,
                                "properties": {"jobs": {**jobs, "minItems": 1}},
                            }
                        }
                    },
                },
            )
        },
        "/batches/{batch_id}/seal": {
            "post": op(
                "Seal a batch: no more jobs; it settles once every member ended (at once when "
                "they all have). Sealing again answers the batch as is.",
                {"200": _json(_ref("Batch"), "The batch, sealed or settled."), **not_found},
                operationId="sealBatch",
                parameters=[param],
            )
        },
    }
