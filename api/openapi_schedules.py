"""The schedules' part of the OpenAPI document (api/openapi.py merges it)."""

from __future__ import annotations

from typing import Any

from workstream.api.openapi_parts import JSON, TIME, Schema
from workstream.api.openapi_parts import error_response as _error
from workstream.api.openapi_parts import json_response as _json
from workstream.api.openapi_parts import ref as _ref
from workstream.common.jobs import MAX_ATTEMPTS_LIMIT, MAX_TIMEOUT_S, PRIORITY_MAX
from workstream.common.schedules import MISSED_POLICIES

ID_RE = "^[A-Za-z0-9_.:-]{1,128}$"
NAME_RE = "^[A-Za-z0-9_.-]{1,64}$"


def _template() -> Schema:
    return {
        "type": "object",
        "description": "The job each run creates, judged as POST /jobs judges a job (errors "
        "name `job.<field>`); its other options (delay, run_at, idempotency_key, unique, "
        "expires_at, expires_in) are refused: the schedule times and keys each run.",
        "required": ["type"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
            "payload": {},
            "queue": {"type": "string", "pattern": NAME_RE, "default": "default"},
            "max_attempts": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS_LIMIT},
            "timeout": {"type": "number", "minimum": 0.001, "maximum": MAX_TIMEOUT_S},
            "priority": {"type": "integer", "minimum": 0, "maximum": PRIORITY_MAX, "default": 0},
        },
    }


def _timing_properties() -> Schema:
    return {
        "cron": {
            "type": "string",
            "maxLength": 256,
            "description": "Five-field cron expression (cronsim); a bad or never-due one "
            "answers 400 invalid_cron.",
        },
        "timezone": {
            "type": "string",
            "description": "IANA time zone for cron (default UTC); daylight-saving gaps run "
            "when the clocks have moved on, repeated hours once. Unknown: 400 unknown_timezone.",
        },
        "every": {
            "anyOf": [{"type": "string"}, {"type": "number"}],
            "description": "Interval such as 30s, 5m, 1h (a number: seconds), 1 s to 366 d; "
            "otherwise 400 invalid_every.",
        },
    }


def schedule_schemas() -> Schema:
    missed = {"enum": list(MISSED_POLICIES), "default": "run_once"}
    return {
        "ScheduleDefinition": {
            "type": "object",
            "description": "Exactly one of cron (with an optional timezone) and every.",
            "required": ["job"],
            "additionalProperties": False,
            "properties": {
                **_timing_properties(),
                "job": _template(),
                "paused": {"type": "boolean", "default": False},
                "missed": {
                    **missed,
                    "description": "After downtime: run_once enqueues one run for the missed "
                    "window, skip none; then the schedule keeps its beat.",
                },
            },
        },
        "Schedule": {
            "type": "object",
            "required": ["id", "job", "paused", "missed", "next_run_at", "last_run_at"],
            "properties": {
                "id": {"type": "string"},
                **_timing_properties(),
                "job": _template(),
                "paused": {"type": "boolean"},
                "missed": missed,
                "next_run_at": {**TIME, "description": "Null while paused."},
                "last_run_at": {**TIME, "description": "Due time of the last run enqueued."},
                "last_job_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "runs": {"type": "integer", "minimum": 0},
                "skipped": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Missed windows the skip policy enqueued nothing for.",
                },
                "created_at": TIME,
                "updated_at": TIME,
            },
        },
    }


def schedule_paths(op: Any) -> Schema:
    """`op(summary, responses, **extra)` is api/openapi.py's operation builder."""
    schedule = _json(_ref("Schedule"), "The schedule.")
    error = _ref("Error")
    bad_id = {"400": _error("BadRequest")}
    not_found = {"404": _json(error, "schedule_not_found."), **bad_id}
    param = {
        "name": "schedule_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": ID_RE},
        "description": "The idempotency keys' characters; anything else answers 400.",
    }
    location = {"Location": {"schema": {"type": "string"}, "description": "/schedules/<id>"}}
    body = {"required": True, "content": {JSON: {"schema": _ref("ScheduleDefinition")}}}
    put_errors = {
        "400": _json(
            error,
            "invalid_cron, unknown_timezone, invalid_every, invalid_missed_policy or "
            "validation_error (with `field`); nothing was written.",
        ),
        "409": _json(error, "too_many_schedules: a new one past MAX_SCHEDULES."),
        "413": _error("PayloadTooLarge"),
        "415": _error("UnsupportedMediaType"),
    }
    listing = {
        "type": "object",
        "required": ["schedules"],
        "properties": {"schedules": {"type": "array", "items": _ref("Schedule")}},
    }
    return {
        "/schedules": {
            "get": op(
                "Every schedule, in id order.",
                {"200": _json(listing, "Schedules.")},
                operationId="listSchedules",
            ),
        },
        "/schedules/{schedule_id}": {
            "parameters": [param],
            "get": op("One schedule.", {"200": schedule, **not_found}, operationId="getSchedule"),
            "put": op(
                "Create or replace a schedule; each due run is enqueued exactly once.",
                {
                    "200": _json(_ref("Schedule"), "Replaced."),
                    "201": _json(_ref("Schedule"), "Created.", location),
                    **put_errors,
                },
                operationId="putSchedule",
                requestBody=body,
            ),
            "delete": op(
                "Delete a schedule (the jobs it created stay).",
                {"204": {"description": "Deleted."}, **not_found},
                operationId="deleteSchedule",
            ),
        },
        "/schedules/{schedule_id}/pause": {
            "parameters": [param],
            "post": op(
                "Stop a schedule firing.",
                {"200": schedule, **not_found},
                operationId="pauseSchedule",
            ),
        },
        "/schedules/{schedule_id}/resume": {
            "parameters": [param],
            "post": op(
                "Fire again, from now (no catch-up).",
                {"200": schedule, **not_found},
                operationId="resumeSchedule",
            ),
        },
    }
