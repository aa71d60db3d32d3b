"""Request checks done before anything touches Redis: body size, media type, JSON syntax,
field types and path/query parameters. Every failure raises an ApiError; nothing is written."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import falcon

from workstream.api.errors import ApiError, validation_error
from workstream.common.errors import ValidationError
from workstream.common.jobs import CLIENT_ID_PATTERN, QUEUE_PATTERN, TYPE_PATTERN, JobSpec
from workstream.common.ssrf import (
    InvalidUrlError,
    IPNetwork,
    forbidden_reason,
    parse_http_payload,
    parse_url,
)
from workstream.common.states import JobStatus
from workstream.common.store import MAX_BATCH

MAX_WAIT_S = 60.0
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
# "<created ms>-<entries read at that ms>", as JobStore.list_jobs returns. Redis skips
# `offset` entries per page, so the offset is bounded by what one millisecond can hold
# (a 1,000-job batch shares one; 99,999 is ~100x what Redis can create in a millisecond).
CURSOR_PATTERN = re.compile(r"^[0-9]{1,16}-[0-9]{1,5}$")
LIMIT_PATTERN = re.compile(r"[0-9]{1,4}")
BATCH_FIELDS = frozenset({"jobs"})
_CHUNK = 65536


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_body(req: falcon.Request, limit: int) -> bytes:
    """Checks Content-Length before reading. Without one (chunked), reads the raw stream when
    the server marks it EOF-terminated (waitress does), and then at most limit + 1 bytes."""
    length = req.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    if length is not None:
        stream: Any = req.bounded_stream
        budget = length
    elif req.env.get("wsgi.input_terminated"):
        stream, budget = req.stream, limit + 1
    else:
        return b""  # no length and no EOF promise: reading could block forever
    chunks: list[bytes] = []
    size = 0
    while size < budget:
        chunk = stream.read(min(_CHUNK, budget - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise _too_large(limit)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body exceeds {limit} bytes")


def read_json(req: falcon.Request, limit: int) -> Any:
    """The decoded JSON body of a request that must be application/json."""
    media = (req.content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(
            415, "unsupported_media_type", "send the body as Content-Type: application/json"
        )
    raw = read_body(req, limit)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as ex:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {ex}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "request body is nested too deeply") from None


def idempotency_header(req: falcon.Request) -> str | None:
    """The Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header): a structured
    field string, `"key"`; a bare key is taken too. The same characters as the body field."""
    raw = req.get_header("Idempotency-Key")
    if raw is None:
        return None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not TYPE_PATTERN.fullmatch(key):
        raise validation_error("Idempotency-Key", f"expected {TYPE_PATTERN.pattern}")
    return key


def job_spec(
    data: Any, allowed_networks: Sequence[IPNetwork] = (), idempotency_key: str | None = None
) -> JobSpec:
    """allowed_networks (HTTP_JOB_ALLOWED_NETWORKS): an `http` job naming a forbidden address
    is refused here too (names are resolved at delivery, never here). idempotency_key: the
    header's, which works as the body field; both given and different is a 400."""
    if idempotency_key is not None and isinstance(data, dict):
        body_key = data.get("idempotency_key")
        if body_key is not None and body_key != idempotency_key:
            raise validation_error(
                "Idempotency-Key", "differs from the body's idempotency_key; send one of them"
            )
        data = {**data, "idempotency_key": idempotency_key}
    spec = _from_mapping(data, "")
    _check_http_job(spec, "", allowed_networks)
    _check_callback(spec, "", allowed_networks)
    return spec


def _from_mapping(data: Any, prefix: str) -> JobSpec:
    """JobSpec.from_mapping; a malformed callback_url is 400 invalid_url, as an http job's url."""
    try:
        return JobSpec.from_mapping(data)
    except ValidationError as ex:
        if ex.field != "callback_url":
            raise
        name = prefix + ex.field
        raise ApiError(400, "invalid_url", f"{name}: {ex.message}", field=name) from None


def _check_callback(spec: JobSpec, prefix: str, allowed: Sequence[IPNetwork]) -> None:
    """A callback_url naming a forbidden address is refused as an http job's url is (a name
    is resolved at delivery, where the worker checks it again)."""
    if spec.callback_url is None:
        return
    literal = parse_url(spec.callback_url, "callback_url").literal
    reason = None if literal is None else forbidden_reason(literal, allowed)
    if reason is not None:
        name = f"{prefix}callback_url"
        raise ApiError(400, "target_forbidden", f"{name}: {literal} is {reason}", field=name)


def _check_http_job(spec: JobSpec, prefix: str, allowed: Sequence[IPNetwork]) -> None:
    if spec.type != "http":
        return
    try:
        request = parse_http_payload(spec.payload)
    except InvalidUrlError as ex:
        code = "invalid_url" if ex.field == "payload.url" else "validation_error"
        name = prefix + ex.field
        raise ApiError(400, code, f"{name}: {ex.message}", field=name) from None
    literal = request.target.literal
    reason = None if literal is None else forbidden_reason(literal, allowed)
    if reason is not None:
        raise ApiError(
            400,
            "target_forbidden",
            f"{prefix}payload.url: {literal} is {reason}",
            field=f"{prefix}payload.url",
        )


def batch_specs(data: Any, allowed_networks: Sequence[IPNetwork] = ()) -> list[JobSpec]:
    """`{"jobs": [...]}` with 1..MAX_BATCH entries; a bad entry is named `jobs[i].field`."""
    if not isinstance(data, Mapping):
        raise validation_error("body", "expected a JSON object")
    unknown = sorted(set(data) - BATCH_FIELDS)
    if unknown:
        raise validation_error(unknown[0], "unknown field")
    jobs = data.get("jobs")
    if not isinstance(jobs, list):
        raise validation_error("jobs", "expected an array of jobs")
    if not 1 <= len(jobs) <= MAX_BATCH:
        raise validation_error("jobs", f"expected 1 to {MAX_BATCH} jobs, got {len(jobs)}")
    specs = []
    ids: set[str] = set()
    for index, item in enumerate(jobs):
        try:
            specs.append(_from_mapping(item, f"jobs[{index}]."))
            _check_http_job(specs[-1], f"jobs[{index}].", allowed_networks)
            _check_callback(specs[-1], f"jobs[{index}].", allowed_networks)
            own_id = specs[-1].id
            if own_id is not None:
                if own_id in ids:
                    raise ValidationError("id", f"{own_id!r} is given to an earlier job")
                ids.add(own_id)
        except ValidationError as ex:
            name = f"jobs[{index}]" if ex.field == "body" else f"jobs[{index}].{ex.field}"
            raise validation_error(name, ex.message) from None
    return specs


def job_id(raw: str) -> str:
    """Anything that is not an id cannot name a job: 404, as for an unknown id. An id is one
    the store made (32 hex digits) or a client's own (CLIENT_ID_PATTERN, which holds those)."""
    if not CLIENT_ID_PATTERN.fullmatch(raw):
        raise ApiError(404, "job_not_found", f"job {raw[:64]!r} not found")
    return raw


def queue_name(raw: str, field: str = "name") -> str:
    """A malformed queue name is a client mistake (400), unlike an unknown well-formed one."""
    if not QUEUE_PATTERN.fullmatch(raw):
        raise validation_error(field, "expected [A-Za-z0-9_.-]{1,64}")
    return raw


def wait_seconds(req: falcon.Request) -> float:
    raw = req.get_param("wait")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise validation_error("wait", "expected a number of seconds") from None
    if not 0 <= value <= MAX_WAIT_S:  # also rejects nan
        raise validation_error("wait", f"expected 0 to {MAX_WAIT_S:g} seconds")
    return value


def limit(req: falcon.Request) -> int:
    raw = req.get_param("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not LIMIT_PATTERN.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise validation_error("limit", f"expected an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def status_filter(req: falcon.Request) -> JobStatus | None:
    raw = req.get_param("status")
    if raw is None:
        return None
    try:
        return JobStatus(raw)
    except ValueError:
        names = ", ".join(s.value for s in JobStatus)
        raise validation_error("status", f"expected one of {names}") from None


def name_filter(req: falcon.Request, field: str) -> str | None:
    raw = req.get_param(field)
    if raw is None:
        return None
    pattern = QUEUE_PATTERN if field == "queue" else TYPE_PATTERN
    if not pattern.fullmatch(raw):
        raise validation_error(field, f"expected {pattern.pattern[1:-1]}")
    return raw


def cursor(req: falcon.Request) -> str | None:
    raw = req.get_param("cursor")
    if raw is None or raw == "":
        return None
    if not CURSOR_PATTERN.fullmatch(raw):
        raise validation_error("cursor", "not a cursor this API returned")
    return raw
