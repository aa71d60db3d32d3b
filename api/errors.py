"""The one table from errors to HTTP answers; every error body is
`{"error": {"code": "...", "message": "..."}}` (plus `"field"` for validation errors)."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import falcon
import redis

from workstream.api.drain import UNKNOWN_RETRY_AFTER_S, DrainRate
from workstream.common.errors import (
    BatchConflictError,
    BatchNotFoundError,
    BatchSealedError,
    BatchTooLargeError,
    DependencyError,
    DuplicateJobError,
    IdConflictError,
    IdempotencyConflictError,
    InvalidTransitionError,
    JobNotFoundError,
    NotInBatchError,
    QueueFullError,
    QueueNotEmptyError,
    QueueNotFoundError,
    TooManyQueuesError,
    TooManyTypesError,
    ValidationError,
)
from workstream.common.redis_conn import NotReplicatedError, unavailable_reason

log = logging.getLogger(__name__)

REDIS_RETRY_AFTER_S = 5

# Codes for HTTPErrors Falcon raises itself (routing, unsupported methods).
STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "queue_full",
    500: "internal_error",
    503: "redis_unavailable",
}


class ApiError(falcon.HTTPError):
    """An HTTP error with a stable machine-readable code and, for validation, the field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        job_id: str | None = None,
        ids: list[str] | None = None,
    ) -> None:
        super().__init__(status, title=code, description=message, headers=headers)
        self.error_code = code
        self.message = message
        self.field = field
        self.job_id = job_id  # the job a 409 duplicate_job or 422 idempotency_conflict names
        self.ids = ids  # the job ids a 400 unknown_parents or dependency_cycle names


def validation_error(field: str, message: str) -> ApiError:
    return ApiError(400, "validation_error", f"{field}: {message}", field=field)


def error_body(req: falcon.Request, ex: falcon.HTTPError) -> dict[str, Any]:
    if isinstance(ex, ApiError):
        error: dict[str, Any] = {"code": ex.error_code, "message": ex.message}
        if ex.field is not None:
            error["field"] = ex.field
        if ex.job_id is not None:
            error["job_id"] = ex.job_id
        if ex.ids is not None:
            error["ids"] = ex.ids
        return {"error": error}
    status = ex.status_code
    code = STATUS_CODES.get(status, "http_error")
    if status == 404:
        message = f"no endpoint at {req.path}"
    elif status == 405:
        message = f"{req.method} is not allowed on {req.path}"
    else:
        message = ex.description or ex.title or code
    return {"error": {"code": code, "message": message}}


def serialize_error(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError) -> None:
    """Always JSON, whatever the client accepts: one shape for every error."""
    resp.content_type = falcon.MEDIA_JSON
    resp.media = error_body(req, ex)


def _validation(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    assert isinstance(ex, ValidationError)
    raise validation_error(ex.field, ex.message)


def _job_not_found(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    raise ApiError(404, "job_not_found", str(ex))


def _queue_full(
    drain: DrainRate | None, req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any
) -> None:
    """Retry-After: how long the queue takes, at its recent pace, to drain what was asked for
    (the responder leaves `queue_demand`, jobs per queue; one job when it does not)."""
    assert isinstance(ex, QueueFullError)
    needed = (getattr(req.context, "queue_demand", None) or {}).get(ex.queue, 1)
    seconds = UNKNOWN_RETRY_AFTER_S if drain is None else drain.retry_after(ex.queue, needed)
    raise ApiError(429, "queue_full", str(ex), headers={"Retry-After": str(seconds)})


def _queue_not_found(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    raise ApiError(404, "queue_not_found", str(ex))


def _queue_not_empty(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    raise ApiError(409, "queue_not_empty", str(ex))


def _too_many_queues(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    raise ApiError(409, "too_many_queues", str(ex))


def _too_many_types(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    raise ApiError(409, "too_many_types", str(ex))


def _invalid_transition(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    raise ApiError(409, "invalid_transition", str(ex))


def _entry_field(req: falcon.Request, index: int, name: str) -> str:
    """The field of a batch entry (`jobs[3].unique`) or of the one job submitted."""
    in_batch = req.path.endswith("/batch") or req.path.startswith("/batches")
    return f"jobs[{index}].{name}" if in_batch else name


def _idempotency_conflict(
    req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any
) -> None:
    assert isinstance(ex, IdempotencyConflictError)
    field = _entry_field(req, ex.index, "idempotency_key")
    raise ApiError(422, "idempotency_conflict", str(ex), field=field, job_id=ex.job_id)


def _duplicate_job(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    assert isinstance(ex, DuplicateJobError)
    field = _entry_field(req, ex.index, "unique")
    raise ApiError(409, "duplicate_job", str(ex), field=field, job_id=ex.job_id)


def _id_conflict(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    assert isinstance(ex, IdConflictError)
    field = _entry_field(req, ex.index, "id")
    raise ApiError(409, "id_conflict", str(ex), field=field, job_id=ex.job_id)


def _dependency(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    assert isinstance(ex, DependencyError)
    raise ApiError(400, ex.code, str(ex), field="depends_on", ids=ex.ids)


# Batches (common/batches.py): status and stable code per refusal; nothing was written.
_BATCH_ERRORS: dict[type[Exception], tuple[int, str]] = {
    BatchNotFoundError: (404, "batch_not_found"),
    BatchSealedError: (409, "batch_sealed"),
    BatchTooLargeError: (409, "batch_too_large"),
    BatchConflictError: (422, "idempotency_conflict"),
}


def _batch(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    status, code = _BATCH_ERRORS[type(ex)]
    raise ApiError(status, code, str(ex))


def _not_in_batch(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    assert isinstance(ex, NotInBatchError)
    field = _entry_field(req, ex.index, "idempotency_key")
    raise ApiError(409, "job_not_in_batch", str(ex), field=field, job_id=ex.job_id)


def _redis_down(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    reason = unavailable_reason(ex) or "unreachable"
    log.warning(
        "redis.unavailable", extra={"reason": reason, "error": f"{type(ex).__name__}: {ex}"}
    )
    headers = {"Retry-After": str(REDIS_RETRY_AFTER_S)}
    message = f"Redis is unavailable ({reason}); retry later"
    raise ApiError(503, "redis_unavailable", message, headers=headers)


def _not_replicated(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    """DURABILITY=replicated: the write ran on the primary but too few replicas confirmed it,
    so it may or may not survive a failover. Resending with the same Idempotency-Key is safe."""
    log.warning("redis.not_replicated", extra={"error": str(ex)})
    message = f"{ex}; the job may exist: resend with the same idempotency key"
    headers = {"Retry-After": "1"}
    raise ApiError(503, "not_replicated", message, headers=headers)


def _redis_reply(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    """An error reply: OOM, BUSY, READONLY, ... (common.redis_conn.unavailable_reason) is Redis
    refusing work for now, a 503; any other is a bug, a 500. A refused script wrote nothing:
    each script checks before its first write, and Redis refuses a script's writes under OOM
    only until its first one succeeded."""
    if unavailable_reason(ex) is None:
        _unexpected(req, resp, ex, params)
    _redis_down(req, resp, ex, params)


def _unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    log.error("http.unhandled_error", exc_info=ex, extra={"method": req.method, "path": req.path})
    raise ApiError(500, "internal_error", "internal error; see the server log")


def register_error_handlers(
    app: falcon.App[falcon.Request, falcon.Response], drain: DrainRate | None = None
) -> None:
    """Falcon picks the most specific handler along the exception's MRO, so the catch-all
    Exception handler never shadows HTTPError or the domain errors."""
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(ValidationError, _validation)
    app.add_error_handler(JobNotFoundError, _job_not_found)
    app.add_error_handler(QueueFullError, partial(_queue_full, drain))
    app.add_error_handler(InvalidTransitionError, _invalid_transition)
    app.add_error_handler(QueueNotFoundError, _queue_not_found)
    app.add_error_handler(QueueNotEmptyError, _queue_not_empty)
    app.add_error_handler(TooManyQueuesError, _too_many_queues)
    app.add_error_handler(TooManyTypesError, _too_many_types)
    app.add_error_handler(IdempotencyConflictError, _idempotency_conflict)
    app.add_error_handler(DuplicateJobError, _duplicate_job)
    app.add_error_handler(IdConflictError, _id_conflict)
    app.add_error_handler(DependencyError, _dependency)
    for batch_error in _BATCH_ERRORS:
        app.add_error_handler(batch_error, _batch)
    app.add_error_handler(NotInBatchError, _not_in_batch)
    app.add_error_handler(redis.exceptions.ConnectionError, _redis_down)
    app.add_error_handler(redis.exceptions.TimeoutError, _redis_down)
    app.add_error_handler(redis.exceptions.ResponseError, _redis_reply)
    app.add_error_handler(NotReplicatedError, _not_replicated)
