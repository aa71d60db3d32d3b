"""The OpenAPI 3.1 document served at /openapi.json, describing every endpoint as served.

Path parameters: a job id that is not 32 lowercase hex digits answers 404 job_not_found (it
cannot name a job); a malformed queue name answers 400 validation_error with field `name`.
"""

from __future__ import annotations

from typing import Any

from workstream.api import scopes
from workstream.api.middleware import is_public
from workstream.api.openapi_batches import batch_paths, batch_schemas
from workstream.api.openapi_leases import lease_paths, lease_responses, lease_schemas
from workstream.api.openapi_schedules import schedule_paths, schedule_schemas
from workstream.api.validation import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT, MAX_WAIT_S
from workstream.common.events import EVENT_NAMES
from workstream.common.jobs import (
    HISTORY_MAX_ENTRIES,
    MAX_ATTEMPTS_LIMIT,
    MAX_CHILDREN_SHOWN,
    MAX_DELAY_S,
    MAX_DEPENDS_ON,
    MAX_PROGRESS_BYTES,
    MAX_TIMEOUT_S,
    MAX_TRACEBACK_CHARS,
    ON_PARENT_FAILURE,
    OUTCOMES,
    PRIORITY_MAX,
    UNIQUE_UNTIL,
)
from workstream.common.limits import MAX_CONCURRENCY, RATE_PATTERN
from workstream.common.metrics import COUNTERS, JSON_ALIASES
from workstream.common.states import JobStatus
from workstream.common.store import MAX_BATCH
from workstream.common.timeline import MAX_MINUTES

JSON = "application/json"
TYPE_RE = "^[A-Za-z0-9_.:-]{1,128}$"
QUEUE_RE = "^[A-Za-z0-9_.-]{1,64}$"
# A job id: one the store made (32 hex digits) or a client's own (the idempotency key's rules).
JOB_ID_RE = TYPE_RE

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: Schema, description: str, headers: Schema | None = None) -> Schema:
    response: Schema = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str) -> Schema:
    return {"$ref": f"#/components/responses/{description}"}


RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}}
# Every protected endpoint may answer these.
COMMON_ERRORS = {
    "401": _error("Unauthorized"),
    "403": _error("InsufficientScope"),
    "503": _error("RedisUnavailable"),
}
BODY_ERRORS = {
    "400": _error("BadRequest"),
    "413": _error("PayloadTooLarge"),
    "415": _error("UnsupportedMediaType"),
}


def _job_schema() -> Schema:
    timestamp = _nullable({"type": "string", "format": "date-time"})
    text = _nullable({"type": "string"})
    properties: Schema = {
        "id": {"type": "string", "pattern": JOB_ID_RE},
        "type": {"type": "string"},
        "queue": {"type": "string"},
        "status": _ref("JobStatus"),
        "payload": {"description": "Any JSON value."},
        "result": {"description": "The handler's JSON result, null until completed."},
        "error": text,
        "attempts": {"type": "integer", "minimum": 0},
        "max_attempts": {"type": "integer", "minimum": 1},
        "timeout": {"type": "number", "description": "Seconds."},
        "worker": text,
        "idempotency_key": text,
        "unique_key": text,
        "expires_at": timestamp,
        "group": text,
        "priority": {"type": "integer", "minimum": 0, "maximum": PRIORITY_MAX},
        "progress": {
            "description": "The last progress its run reported (Python: ctx.progress(value, "
            'message) stores {"value": ..., "message": ...}; an HTTP consumer: the `progress` '
            f"of extend), any JSON of at most {MAX_PROGRESS_BYTES} bytes; null before any.",
        },
        "cancel_requested": {
            "type": "boolean",
            "description": "Processing, and a cancel was asked for (POST /jobs/{id}/cancel "
            "answered 202): the run ends cancelled when it stops, or when its lease or timeout "
            "runs out.",
        },
        "depends_on": _nullable(
            {
                "type": "array",
                "items": {"type": "string"},
                "description": "The parents it was submitted with (null: none).",
            }
        ),
        "on_parent_failure": _nullable({"enum": list(ON_PARENT_FAILURE)}),
        "parents_left": _nullable(
            {
                "type": "integer",
                "minimum": 0,
                "description": "While waiting: parents that have not ended yet; else null.",
            }
        ),
        "children_count": {
            "type": "integer",
            "minimum": 0,
            "description": "Jobs submitted with this one in their depends_on.",
        },
        "callback_url": text,
        "callback_job_id": _nullable(
            {
                "type": "string",
                "pattern": JOB_ID_RE,
                "description": "The http job delivering its callback (GET /jobs/{id} shows "
                "its attempts); null until the job has ended, or without callback_url.",
            }
        ),
        "callback_for": _nullable(
            {
                "type": "string",
                "description": "On a callback's http job: the job whose record it delivers.",
            }
        ),
        "batch": _nullable(
            {
                "type": "string",
                "pattern": JOB_ID_RE,
                "description": "The batch it is a member of (GET /batches/{id}); else null.",
            }
        ),
    }
    for name in ("created_at", "enqueued_at", "run_at", "started_at", "finished_at"):
        properties[name] = timestamp
    required = sorted(properties)
    properties["history"] = {
        "type": "array",
        "items": _ref("Attempt"),
        "maxItems": HISTORY_MAX_ENTRIES,
        "description": "The attempts that ended, oldest first (at most the last "
        f"{HISTORY_MAX_ENTRIES}). In every answer about one job; listings leave it out.",
    }
    properties["children"] = {
        "type": "array",
        "items": {"type": "string"},
        "maxItems": MAX_CHILDREN_SHOWN,
        "description": f"The first {MAX_CHILDREN_SHOWN} jobs that depend on this one "
        "(children_count counts them all). In every answer about one job; listings leave it "
        "out.",
    }
    return {"type": "object", "required": required, "properties": properties}


def _attempt_schema() -> Schema:
    timestamp = _nullable({"type": "string", "format": "date-time"})
    text = _nullable({"type": "string"})
    properties: Schema = {
        "attempt": {"type": "integer", "minimum": 0},
        "worker": {"type": "string", "description": "The worker that ran it."},
        "started_at": timestamp,
        "ended_at": timestamp,
        "outcome": {
            "enum": list(OUTCOMES),
            "description": "lost: its worker died, or the sweeper reclaimed it past its "
            "deadline; timed_out: the worker stopped it at its timeout; cancelled: the run "
            "ended after its cancel was requested.",
        },
        "error": text,
        "traceback": {
            **text,
            "description": f"The handler's traceback, its last {MAX_TRACEBACK_CHARS} "
            "characters; older entries lose theirs when a job's history grows large.",
        },
    }
    return {"type": "object", "required": sorted(properties), "properties": properties}


def _submission_schema() -> Schema:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "pattern": TYPE_RE, "description": "Handler name."},
            "payload": {"description": "Any JSON value (null means {})."},
            "queue": {"type": "string", "pattern": QUEUE_RE, "default": "default"},
            "max_attempts": _nullable(
                {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS_LIMIT}
            ),
            "timeout": _nullable({"type": "number", "minimum": 0.001, "maximum": MAX_TIMEOUT_S}),
            "delay": _nullable({"type": "number", "minimum": 0, "maximum": MAX_DELAY_S}),
            "run_at": _nullable({"type": "string", "format": "date-time"}),
            "idempotency_key": _nullable({"type": "string", "pattern": TYPE_RE}),
            "unique": _nullable(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "key": {"type": "string", "pattern": TYPE_RE},
                        "ttl": {
                            "type": ["number", "string"],
                            "description": "Seconds, or a duration such as 10m; default 1h.",
                        },
                        "until": {"enum": list(UNIQUE_UNTIL), "default": "finished"},
                    },
                    "description": "While a live job holds the key (given, or a hash of type, "
                    "queue and payload), another job with it is refused: 409 duplicate_job. "
                    "until: the holder lets go once it starts, once it finishes, or only when "
                    "the ttl runs out; no lock outlives its ttl.",
                }
            ),
            "expires_at": _nullable({"type": "string", "format": "date-time"}),
            "expires_in": _nullable(
                {"type": ["number", "string"], "description": "Seconds, or a duration (10m)."}
            ),
            "group": _nullable(
                {
                    "type": "string",
                    "pattern": QUEUE_RE,
                    "description": "Jobs of one group processing at once are capped by the "
                    "queue's group_concurrency (see /queues/{name}/limits).",
                }
            ),
            "priority": {
                "type": "integer",
                "minimum": 0,
                "maximum": PRIORITY_MAX,
                "default": 0,
                "description": "Higher first within the queue, first in first out within one "
                "level; 0 (the default) is the queue's plain order, after every higher level. "
                "Anything but an integer from 0 to 9 is a 400 validation_error (field "
                "priority), nothing written.",
            },
            "id": _nullable(
                {
                    "type": "string",
                    "pattern": TYPE_RE,
                    "description": "Your own id for the job, unique in the namespace while its "
                    "record exists. The same request under it again answers the job (200, or "
                    "created false in a batch); another request is 409 id_conflict, nothing "
                    "written. Default: 32 hex digits the server makes.",
                }
            ),
            "depends_on": _nullable(
                {
                    "type": "array",
                    "items": {"type": "string", "pattern": TYPE_RE},
                    "minItems": 1,
                    "maxItems": MAX_DEPENDS_ON,
                    "uniqueItems": True,
                    "description": "Ids of jobs that exist, or of jobs of the same batch. The "
                    "job is created waiting and becomes pending in the same step that "
                    "completes its last parent; a parent already completed counts as done. "
                    "Unknown ids are 400 unknown_parents and a cycle within a batch 400 "
                    "dependency_cycle, each naming the ids (`ids`), nothing written. Not with "
                    "delay or run_at. Waiting jobs count toward the queue's capacity. A parent in "
                    "another shard (QUEUE_SHARDS) is linked and settled by hand-offs: the job "
                    "then waits until the mover has linked it, even for a parent already "
                    "completed.",
                }
            ),
            "on_parent_failure": {
                "enum": list(ON_PARENT_FAILURE),
                "default": "cancel",
                "description": "When a parent fails for good or is cancelled: cancel (the job "
                "is cancelled, error parent_failed: <parent id>, and so in turn are its own "
                "dependents that say cancel) or run (the parent counts as ended; the job runs "
                "once every parent has ended, its parent_results giving null for that one).",
            },
            "callback_url": _nullable(
                {
                    "type": "string",
                    "format": "uri",
                    "maxLength": 2048,
                    "description": "When the job ends (completed, failed for good, cancelled or "
                    "expired), an http job POSTs its final record (the JSON GET /jobs/{id} "
                    "answers, as it was then) to this http(s) URL, signed as http jobs are "
                    "(WEBHOOK_SECRET), retried CALLBACK_MAX_ATTEMPTS times; it is created in "
                    "the same step that ends the job, so it is never lost. A malformed URL is "
                    "400 invalid_url, an address outside HTTP_JOB_ALLOWED_NETWORKS that is not "
                    "public 400 target_forbidden, nothing written; a name is resolved and "
                    "checked at delivery.",
                }
            ),
        },
        "description": "Give either delay (seconds) or run_at (RFC 3339), not both. A job not "
        "started by expires_at (or expires_in after submission) is cancelled, error expired.",
    }


def _queue_schema() -> Schema:
    counts = {name: {"type": "integer", "minimum": 0} for name in _DEPTHS}
    serving: Schema = {
        "workers": {
            "type": "integer",
            "minimum": 0,
            "description": "Live workers serving this queue.",
        },
        "unserved": {
            "type": "boolean",
            "description": "Jobs are pending and no live worker serves the queue.",
        },
        "unhandled_types": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Job types used in this queue that no live worker serving it has a "
            "handler for (such jobs are retried with backoff, then fail).",
        },
    }
    return {
        "type": "object",
        "required": ["name", *_DEPTHS, "paused", "limits", "parked", *serving],
        "properties": {
            "name": {"type": "string"},
            **counts,
            "paused": {"type": "boolean"},
            "limits": _ref("Limits"),
            "parked": {
                "type": "integer",
                "minimum": 0,
                "description": "Pending jobs parked at their group's cap (not in pending; "
                "they count toward the queue's capacity).",
            },
            "waiting": {
                "type": "integer",
                "minimum": 0,
                "description": "Jobs waiting for their parents (depends_on); they count "
                "toward the queue's capacity.",
            },
            **serving,
        },
    }


def _limits_schema() -> Schema:
    cap = {"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY}
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "rate": _nullable(
                {
                    "type": "string",
                    "pattern": "^" + RATE_PATTERN.pattern + "$",
                    "description": "Jobs started per second, minute or hour across all "
                    "workers, e.g. 50/s or 1000/m (a GCRA; about 10 ms of burst).",
                }
            ),
            "concurrency": _nullable({**cap, "description": "Jobs of the queue at once."}),
            "group_concurrency": _nullable(
                {**cap, "description": "Jobs of one group (a job's `group`) at once."}
            ),
        },
        "description": "Judged when a job is claimed; a held job stays pending and uses no "
        "attempt. null or absent: no limit.",
    }


_DEPTHS = ("pending", "processing", "scheduled", "failed", "waiting")


def _histogram_schema() -> Schema:
    bound = {"anyOf": [{"type": "number"}, {"const": "+Inf"}]}
    bucket = {"type": "array", "prefixItems": [bound, {"type": "integer"}], "minItems": 2}
    return {
        "type": "object",
        "required": ["buckets", "sum", "count"],
        "properties": {
            "buckets": {"type": "array", "items": bucket},
            "sum": {"type": "number"},
            "count": {"type": "integer"},
        },
    }


def _metrics_schema() -> Schema:
    """Each figure under its Prometheus name less `workstream_`; the first names as aliases."""
    integers = (
        *(f"jobs_{name}_total" for name in COUNTERS),
        "stale_completions_total",
        *(f"queue_{depth}" for depth in _DEPTHS),
        "workers_live",
    )
    depth = {
        "type": "object",
        "required": [*_DEPTHS, "paused"],
        "properties": {
            **{name: {"type": "integer"} for name in _DEPTHS},
            "paused": {"type": "boolean"},
        },
    }
    properties: Schema = {name: {"type": "integer"} for name in integers}
    for alias, name in JSON_ALIASES.items():
        properties[alias] = {"type": "integer", "deprecated": True, "description": f"= {name}"}
    properties["queues"] = {"type": "object", "additionalProperties": depth}
    properties["job_wait_seconds"] = _ref("Histogram")
    properties["job_run_seconds"] = _ref("Histogram")
    properties["histograms"] = {
        "type": "object",
        "deprecated": True,
        "description": "= job_wait_seconds and job_run_seconds",
        "required": ["wait_seconds", "run_seconds"],
        "properties": {"wait_seconds": _ref("Histogram"), "run_seconds": _ref("Histogram")},
    }
    required = sorted(properties)
    properties["outbox"] = {
        "type": "object",
        "description": 'With QUEUE_SHARDS only: per source shard ("" the default), the '
        "hand-offs it owes other shards and how long the oldest has been due (0: none due).",
        "additionalProperties": {
            "type": "object",
            "required": ["owed", "oldest_due_seconds"],
            "properties": {
                "owed": {"type": "integer", "minimum": 0},
                "oldest_due_seconds": {"type": "number", "minimum": 0},
            },
        },
    }
    return {"type": "object", "required": required, "properties": properties}


def _timeline_schema() -> Schema:
    quantile = _nullable({"type": "number", "minimum": 0})
    summary = {
        "type": "object",
        "required": ["count", "p50", "p95", "p99"],
        "properties": {
            "count": {"type": "integer", "minimum": 0},
            "p50": quantile,
            "p95": quantile,
            "p99": quantile,
        },
    }
    counts = {name: {"type": "integer", "minimum": 0} for name in COUNTERS}
    rates = {name: {"type": "number", "minimum": 0} for name in ("completed_per_s", "failed_per_s")}
    point = {
        "type": "object",
        "required": ["start", "end", "seconds", *counts, *rates, "wait_seconds", "run_seconds"],
        "properties": {
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
            "seconds": {"type": "number", "exclusiveMinimum": 0},
            **counts,
            **rates,
            "wait_seconds": summary,
            "run_seconds": summary,
        },
    }
    return {
        "type": "object",
        "required": ["minutes", "now", "interval_s", "points"],
        "properties": {
            "minutes": {"type": "integer", "minimum": 1, "maximum": MAX_MINUTES},
            "now": {"type": "string", "format": "date-time"},
            "interval_s": {"type": "integer", "minimum": 1},
            "points": {"type": "array", "maxItems": MAX_MINUTES + 1, "items": point},
        },
    }


def _worker_schema() -> Schema:
    return {
        "type": "object",
        "required": [
            "id",
            "host",
            "pid",
            "queues",
            "handlers",
            "slots_busy",
            "slots_total",
            "started_at",
            "last_heartbeat",
            "heartbeat_age_s",
        ],
        "properties": {
            "id": {"type": "string"},
            "host": {"type": "string"},
            "pid": {"type": "integer"},
            "queues": {"type": "array", "items": {"type": "string"}},
            "handlers": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Job types it has handlers for, sorted.",
            },
            "slots_busy": {
                "type": "integer",
                "description": "Jobs it holds now (its processing list, read at request "
                "time); above slots_total while it holds jobs claimed ahead of a free slot.",
            },
            "slots_total": {"type": "integer"},
            "started_at": _nullable({"type": "string", "format": "date-time"}),
            "last_heartbeat": _nullable({"type": "string", "format": "date-time"}),
            "heartbeat_age_s": {"type": "number", "minimum": 0},
        },
    }


def _error_schema() -> Schema:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[a-z_]+$"},
                    "message": {"type": "string"},
                    "field": {"type": "string", "description": "The offending field."},
                    "job_id": {
                        "type": "string",
                        "description": "duplicate_job, idempotency_conflict, id_conflict: the "
                        "job meant.",
                    },
                    "ids": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "unknown_parents, dependency_cycle, "
                        "too_many_dependents: the job ids meant.",
                    },
                },
            }
        },
    }


def _responses() -> Schema:
    error = _ref("Error")
    www = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return {
        "BadRequest": _json(
            error,
            "invalid_json or validation_error (with `field`); for depends_on, "
            "unknown_parents, dependency_cycle or too_many_dependents (with `ids`).",
        ),
        "Unauthorized": _json(error, "unauthorized: a bearer token is required.", www),
        "InsufficientScope": _json(
            error, "insufficient_scope: the token lacks every scope this operation allows.", www
        ),
        "JobNotFound": _json(error, "job_not_found, or not_found when no route matches."),
        "NotFound": _json(error, "not_found: no route matches the path."),
        "InvalidTransition": _json(error, "invalid_transition: not allowed from this status."),
        "PayloadTooLarge": _json(error, "payload_too_large: body over MAX_PAYLOAD_BYTES."),
        "UnsupportedMediaType": _json(error, "unsupported_media_type: send application/json."),
        "QueueFull": _json(error, "queue_full: the queue is at capacity.", RETRY_AFTER),
        "SubmitConflict": _json(
            error,
            "duplicate_job: a live job holds the unique key (`job_id` names it); or "
            "too_many_queues / too_many_types as TooManyNames. Nothing was written.",
        ),
        "IdempotencyConflict": _json(
            error,
            "idempotency_conflict: the idempotency key was used for a different request "
            "(`job_id` names its job). Nothing was written.",
        ),
        "TooManyNames": _json(
            error,
            "too_many_queues: a new queue past MAX_QUEUES (delete an empty queue first), or "
            "too_many_types: a new job type past MAX_TYPES in its queue. Nothing was written.",
        ),
        "QueueNotFound": _json(
            error,
            "queue_not_found: the queue is neither configured nor in use; nothing was created.",
        ),
        "RedisUnavailable": _json(
            error,
            "redis_unavailable: Redis is unreachable or refuses work for now (OOM, BUSY, "
            "LOADING, READONLY, MASTERDOWN, ...; the message names it). Nothing was written: "
            "retry after Retry-After.",
            RETRY_AFTER,
        ),
    }


def _job_id_param() -> Schema:
    return {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": JOB_ID_RE},
        "description": "32 lowercase hex digits, or the id a client gave the job "
        "([A-Za-z0-9_.:-]{1,128}); anything else answers 404 job_not_found.",
    }


def _queue_param() -> Schema:
    return {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": QUEUE_RE},
        "description": "Malformed names answer 400 validation_error; a queue neither configured "
        "nor in use 404 queue_not_found.",
    }


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _op(summary: str, responses: Schema, **extra: Any) -> Schema:
    return {"summary": summary, "responses": {**responses, **COMMON_ERRORS}, **extra}


def _body(schema: Schema) -> Schema:
    return {"required": True, "content": {JSON: {"schema": schema}}}


def _jobs_paths(max_payload: int) -> Schema:
    job = _ref("Job")
    location = {"Location": {"schema": {"type": "string"}, "description": "/jobs/<id>"}}
    submit = _op(
        f"Submit a job (body at most {max_payload} bytes).",
        {
            "200": _json(job, "The original job: the idempotency key was seen before."),
            "201": _json(job, "Created.", location),
            **BODY_ERRORS,
            "409": _error("SubmitConflict"),
            "422": _error("IdempotencyConflict"),
            "429": _error("QueueFull"),
        },
        requestBody=_body(_ref("JobSubmission")),
        parameters=[
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "As the body's idempotency_key (draft-ietf-httpapi-idempotency-"
                'key-header; "key" or key); both given and different: 400.',
            }
        ],
    )
    batch_result = {
        "type": "object",
        "required": ["jobs"],
        "properties": {
            "jobs": {
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
        },
    }
    batch_body = {
        "type": "object",
        "additionalProperties": False,
        "required": ["jobs"],
        "properties": {
            "jobs": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "items": _ref("JobSubmission"),
            }
        },
    }
    page = {
        "type": "object",
        "required": ["jobs", "next_cursor"],
        "properties": {
            "jobs": {"type": "array", "items": job},
            "next_cursor": _nullable({"type": "string"}),
        },
    }
    not_found = {"404": _error("JobNotFound")}
    return {
        "/jobs": {
            "post": {**submit, "operationId": "submitJob"},
            "get": _op(
                "List jobs, newest first (bounded work per page; a page may be short).",
                {"200": _json(page, "A page."), "400": _error("BadRequest")},
                operationId="listJobs",
                parameters=[
                    _query("status", _ref("JobStatus"), "Only this status."),
                    _query("queue", {"type": "string", "pattern": QUEUE_RE}, "Only this queue."),
                    _query("type", {"type": "string", "pattern": TYPE_RE}, "Only this type."),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                        f"Page size, default {DEFAULT_LIMIT}.",
                    ),
                    _query(
                        "cursor",
                        {"type": "string", "pattern": CURSOR_PATTERN.pattern},
                        "next_cursor of the previous page.",
                    ),
                ],
            ),
        },
        "/job": {"post": {**submit, "operationId": "submitJobLegacy", "deprecated": True}},
        "/jobs/batch": {
            "post": _op(
                f"Submit 1 to {MAX_BATCH} jobs atomically (all or nothing).",
                {
                    "201": _json(batch_result, "Each job's id and status, in order."),
                    **BODY_ERRORS,
                    "409": _error("SubmitConflict"),
                    "422": _error("IdempotencyConflict"),
                    "429": _error("QueueFull"),
                },
                operationId="submitBatch",
                requestBody=_body(batch_body),
            )
        },
        "/jobs/{job_id}": {
            "parameters": [_job_id_param()],
            "get": _op(
                "Read a job; with wait, hold until it is terminal or wait seconds pass.",
                {"200": _json(job, "The job."), "400": _error("BadRequest"), **not_found},
                operationId="getJob",
                parameters=[
                    _query(
                        "wait",
                        {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S},
                        "Long-poll up to this many seconds.",
                    )
                ],
            ),
            "delete": _op(
                "Delete a terminal job's record.",
                {
                    "204": {"description": "Deleted."},
                    **not_found,
                    "409": _error("InvalidTransition"),
                },
                operationId="deleteJob",
            ),
        },
        "/jobs/{job_id}/cancel": {
            "parameters": [_job_id_param()],
            "post": _op(
                "Cancel a job: a pending or scheduled one at once (200), a processing one by "
                "asking its run to stop (202, cancel_requested; it ends cancelled when its "
                "handler stops, or when its lease or timeout runs out). A job that finished "
                "first answers 409 and is not changed.",
                {
                    "200": _json(job, "Cancelled."),
                    "202": _json(job, "Still processing, cancel_requested: it is asked to stop."),
                    **not_found,
                    "409": _error("InvalidTransition"),
                },
                operationId="cancelJob",
            ),
        },
        "/jobs/{job_id}/retry": {
            "parameters": [_job_id_param()],
            "post": _op(
                "Retry a failed job (attempts reset). The dependents its failure cancelled "
                "(parent_failed), and theirs, wait again in the same step (each for its "
                "parents not completed); one with another parent still failed stays cancelled.",
                {
                    "200": _json(job, "Pending again."),
                    **not_found,
                    "409": _error("InvalidTransition"),
                },
                operationId="retryJob",
            ),
        },
        "/status/{job_id}": {
            "parameters": [_job_id_param()],
            "get": _op(
                "The seed's status view.",
                {"200": _json(_ref("LegacyStatus"), "Id and status."), **not_found},
                operationId="getStatusLegacy",
                deprecated=True,
            ),
        },
        "/result/{job_id}": {
            "parameters": [_job_id_param()],
            "get": _op(
                "The seed's result view; 409 not_finished until the job is terminal.",
                {
                    "200": _json(_ref("LegacyResult"), "Terminal job's result or error."),
                    **not_found,
                    "409": _json(_ref("Error"), "not_finished: the job is not terminal yet."),
                },
                operationId="getResultLegacy",
                deprecated=True,
            ),
        },
    }


def _queue_paths() -> Schema:
    queue = _json(_ref("Queue"), "The queue's figures.")
    errors = {"400": _error("BadRequest"), "404": _error("QueueNotFound")}

    def action(summary: str, op_id: str, count: str | None = None) -> Schema:
        if count is None:
            return _op(summary, {"200": queue, **errors}, operationId=op_id)
        body = {
            "type": "object",
            "required": ["queue", count],
            "properties": {"queue": {"type": "string"}, count: {"type": "integer", "minimum": 0}},
        }
        return _op(summary, {"200": _json(body, "How many."), **errors}, operationId=op_id)

    return {
        "/queues": {
            "get": _op(
                "Every known queue's depths.",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["queues"],
                            "properties": {"queues": {"type": "array", "items": _ref("Queue")}},
                        },
                        "Queues.",
                    )
                },
                operationId="listQueues",
            )
        },
        "/queues/{name}": {
            "parameters": [_queue_param()],
            "get": action("One queue's depths.", "getQueue"),
            "delete": _op(
                "Forget an empty queue: its name, paused flag and counters.",
                {
                    "204": {"description": "Deleted."},
                    **errors,
                    "409": _json(
                        _ref("Error"),
                        "queue_not_empty: it holds pending, scheduled, "
                        "processing or failed jobs (the message says which).",
                    ),
                },
                operationId="deleteQueue",
            ),
        },
        "/queues/{name}/pause": {
            "parameters": [_queue_param()],
            "post": action("Stop workers taking jobs from the queue.", "pauseQueue"),
        },
        "/queues/{name}/resume": {
            "parameters": [_queue_param()],
            "post": action("Let workers take jobs again.", "resumeQueue"),
        },
        "/queues/{name}/limits": {
            "parameters": [_queue_param()],
            "get": _op(
                "The queue's limits.",
                {"200": _json(_ref("Limits"), "Its limits."), **errors},
                operationId="getQueueLimits",
            ),
            "put": _op(
                "Replace the queue's limits (a field null or absent: no limit).",
                {
                    "200": _json(_ref("Limits"), "The limits now set."),
                    **errors,
                    "413": _error("PayloadTooLarge"),
                    "415": _error("UnsupportedMediaType"),
                },
                operationId="putQueueLimits",
                requestBody=_body(_ref("Limits")),
            ),
            "delete": _op(
                "Remove every limit of the queue.",
                {"204": {"description": "No limits now."}, **errors},
                operationId="deleteQueueLimits",
            ),
        },
        "/queues/{name}/failed/retry": {
            "parameters": [_queue_param()],
            "post": action(
                f"Retry up to {MAX_BATCH} failed jobs per call.", "retryFailed", "retried"
            ),
        },
        "/queues/{name}/failed/purge": {
            "parameters": [_queue_param()],
            "post": action(
                f"Delete up to {MAX_BATCH} failed jobs per call.", "purgeFailed", "purged"
            ),
        },
    }


def _events_operation() -> Schema:
    names = ", ".join(EVENT_NAMES)
    operation = _op(
        "The job event stream as Server-Sent Events: one message per transition (`id:` its "
        "position, `event:` its name, `data:` JSON {id, event, job_id, status, queue, type, "
        f"attempt, at, worker?, detail?}}; names: {names}). A response waits up to EVENTS_HOLD "
        "for a matching event, sends what there is (up to 500) and ends; an idle one ends with "
        "a heartbeat comment. Every response starts with `retry:` and its last message carries "
        "the position to resume from (Last-Event-ID), so EventSource follows it as one stream. "
        "A position older than the oldest entry kept gets `event: gap` first. "
        "With QUEUE_SHARDS each shard keeps its own stream; without a `queue` or `job` filter "
        "(or for a plain 32-hex job id) the streams are merged: in time order across shards "
        "(ties in shard order, the default shard first), in each shard's exact order within it. "
        "An id is then one position per shard, `<ms>-<seq>,<shard>=<ms>-<seq>,...` (the default "
        "shard's bare and first, names in alphabetical order); send it back unchanged to resume "
        "every shard. A bare `<ms>-<seq>` is the default shard's position; a shard an id does "
        "not name resumes from the earliest position it gives. The JSON's `id` is the same "
        "position and `shard` names the event's shard (absent: the default shard); `event: gap` "
        "then carries `shard`.",
        {
            "200": {
                "description": "text/event-stream messages.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            "400": _json(
                _ref("Error"),
                "malformed_event_id: Last-Event-ID / last_event_id / since is not `<ms>-<seq>`, "
                "a composite id or a time in ms; unknown_event_shard: the id names a shard this "
                "API does not have; validation_error: a malformed filter.",
            ),
            "404": _json(_ref("Error"), "events_disabled: EVENTS_MAX=0."),
        },
        operationId="events",
        parameters=[
            _query("queue", {"type": "string", "pattern": QUEUE_RE}, "Only this queue."),
            _query("type", {"type": "string", "pattern": TYPE_RE}, "Only this job type."),
            _query("job", {"type": "string"}, "Only this job."),
            _query(
                "last_event_id",
                {"type": "string"},
                "Resume after this event id (for clients that cannot send Last-Event-ID).",
            ),
            _query("since", {"type": "string"}, "Same as last_event_id; a time in ms also."),
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "Resume after this event id (EventSource sends it).",
            },
        ],
    )
    operation["responses"]["503"] = _json(
        _ref("Error"),
        "too_many_streams: EVENTS_STREAMS responses already wait in this process; or "
        "redis_unavailable. Retry after Retry-After.",
        RETRY_AFTER,
    )
    return operation


def _other_paths() -> Schema:
    health = {
        "type": "object",
        "required": ["status", "redis"],
        "properties": {
            "status": {"enum": ["ok", "degraded"]},
            "redis": {"enum": ["ok", "unavailable"]},
        },
    }
    workers = {
        "type": "object",
        "required": ["workers"],
        "properties": {"workers": {"type": "array", "items": _ref("Worker")}},
    }
    metrics = {
        "description": "Prometheus text exposition, or JSON with Accept: application/json.",
        "content": {
            "text/plain": {"schema": {"type": "string"}},
            JSON: {"schema": _ref("Metrics")},
        },
    }
    return {
        "/workers": {
            "get": _op("Live workers.", {"200": _json(workers, "Workers.")}, operationId="workers")
        },
        "/metrics": {"get": _op("Global figures.", {"200": metrics}, operationId="metrics")},
        "/events": {"get": _events_operation()},
        "/stats/timeline": {
            "get": _op(
                "Throughput and wait/run percentiles, one point a minute, over the last N "
                "minutes (from snapshots kept in Redis for an hour).",
                {
                    "200": _json(_ref("Timeline"), "Points, oldest first; the newest ends now."),
                    "400": _error("BadRequest"),
                },
                operationId="statsTimeline",
                parameters=[
                    _query(
                        "minutes",
                        {"type": "integer", "minimum": 1, "maximum": MAX_MINUTES},
                        "The window in minutes, default 15.",
                    )
                ],
            )
        },
        "/health": {
            "get": {
                "summary": "Liveness and Redis reachability (no auth).",
                "operationId": "health",
                "security": [],
                "responses": {
                    "200": _json(health, "Redis answers."),
                    "503": _json(health, "Redis does not answer."),
                },
            }
        },
        "/ui": {
            "get": {
                "summary": "The operator dashboard (static files under /ui/static/, no auth).",
                "operationId": "dashboard",
                "security": [],
                "responses": {
                    "200": {
                        "description": "index.html",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": _op(
                "This document.",
                {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
                operationId="openapi",
            )
        },
    }


def _with_scopes(paths: Schema) -> Schema:
    """Each protected operation lists the scopes that may call it, from the table BearerAuth
    enforces (api.scopes); OpenAPI 3.1 lets an http scheme's requirement name roles."""
    for template, item in paths.items():
        if is_public(template):
            continue
        for method, operation in item.items():
            if method != "parameters":
                needed = scopes.needed(template, method.upper())
                operation["security"] = [{}, {"bearer": needed}]
    return paths


def build_document(max_payload_bytes: int) -> Schema:
    legacy_result = {
        "type": "object",
        "required": ["id", "status", "result", "error"],
        "properties": {
            "id": {"type": "string"},
            "status": _ref("JobStatus"),
            "result": {},
            "error": _nullable({"type": "string"}),
        },
    }
    legacy_status = {
        "type": "object",
        "required": ["id", "status"],
        "properties": {"id": {"type": "string"}, "status": _ref("JobStatus")},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "WorkStream",
            "version": "1.0.0",
            "description": "Redis-backed distributed job queue. Errors are always "
            '{"error": {"code", "message"}}; every response carries X-Request-ID.',
        },
        "security": [{}, {"bearer": []}],
        "paths": _with_scopes(
            {
                **_jobs_paths(max_payload_bytes),
                **_queue_paths(),
                **_other_paths(),
                **lease_paths(),
                **schedule_paths(_op),
                **batch_paths(_op),
            }
        ),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Required on all but /health when API_TOKEN or API_TOKENS "
                    "is set. Each operation's security names the token scopes (API_TOKENS "
                    "scope:token) that may call it; a token without one of them gets 403 "
                    "insufficient_scope.",
                }
            },
            "schemas": {
                "JobStatus": {"type": "string", "enum": [s.value for s in JobStatus]},
                "Job": _job_schema(),
                "Attempt": _attempt_schema(),
                "JobSubmission": _submission_schema(),
                "Queue": _queue_schema(),
                "Limits": _limits_schema(),
                "Worker": _worker_schema(),
                "Histogram": _histogram_schema(),
                "Metrics": _metrics_schema(),
                "Timeline": _timeline_schema(),
                **lease_schemas(),
                **schedule_schemas(),
                **batch_schemas(),
                "Error": _error_schema(),
                "LegacyStatus": legacy_status,
                "LegacyResult": legacy_result,
            },
            "responses": {**_responses(), **lease_responses()},
        },
    }
