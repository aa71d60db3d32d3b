"""What the client raises: one class per family of the API's stable error codes, plus
TransportError when no HTTP answer came at all.

    try:
        client.cancel(job_id)
    except Conflict as ex:          # invalid_transition: the job is already running
        print(ex.code, ex.message)
    except NotFound:                # job_not_found
        ...

Catch `ApiError` for any error answer, `ClientError` for everything the client raises."""

from __future__ import annotations

from collections.abc import Mapping


class ClientError(Exception):
    """Base of everything the WorkStream client raises."""


class TransportError(ClientError):
    """No HTTP answer: refused, unresolvable, timed out, or the connection broke."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach API at {url}: {reason}")
        self.url = url
        self.reason = reason


class ApiError(ClientError):
    """The API answered with an error status and (usually) its envelope
    `{"error": {"code", "message", "field"?}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        job_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.job_id = job_id  # the job a duplicate_job or idempotency_conflict names
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}

    @property
    def retry_after(self) -> float | None:
        """Seconds the API asked us to wait (Retry-After), when it said."""
        raw = self.headers.get("retry-after")
        try:
            return max(float(raw), 0.0) if raw is not None else None
        except ValueError:
            return None


class InvalidRequest(ApiError):
    """400 validation_error / invalid_json / bad_request, 413 payload_too_large,
    415 unsupported_media_type: fix the request; nothing was written."""


class Unauthorized(ApiError):
    """401 unauthorized: a bearer token is missing or wrong."""


class Forbidden(ApiError):
    """403 insufficient_scope: the token is valid but its scope does not allow this."""


class NotFound(ApiError):
    """404 job_not_found / queue_not_found / not_found."""


class Conflict(ApiError):
    """409 invalid_transition / queue_not_empty / too_many_queues / too_many_types /
    not_finished / duplicate_job (`job_id`: the live job holding the unique key), 422
    idempotency_conflict (`job_id`: the job the key was first used for): not allowed in the
    current state; nothing was written."""


class QueueFull(ApiError):
    """429 queue_full: the queue is at capacity; retry after `retry_after` seconds."""


class Unavailable(ApiError):
    """503 redis_unavailable: nothing was written; retry after `retry_after` seconds. The
    client already retried it a bounded number of times before raising."""


class ServerError(ApiError):
    """500 internal_error or any other 5xx: a bug or a proxy in the way."""


# Codes first (stable, documented in /openapi.json); the status decides for unknown codes.
_BY_CODE: dict[str, type[ApiError]] = {
    "validation_error": InvalidRequest,
    "invalid_json": InvalidRequest,
    "bad_request": InvalidRequest,
    "payload_too_large": InvalidRequest,
    "unsupported_media_type": InvalidRequest,
    "unauthorized": Unauthorized,
    "insufficient_scope": Forbidden,
    "job_not_found": NotFound,
    "queue_not_found": NotFound,
    "not_found": NotFound,
    "invalid_transition": Conflict,
    "queue_not_empty": Conflict,
    "too_many_queues": Conflict,
    "too_many_types": Conflict,
    "not_finished": Conflict,
    "duplicate_job": Conflict,
    "idempotency_conflict": Conflict,
    "conflict": Conflict,
    "queue_full": QueueFull,
    "redis_unavailable": Unavailable,
    "internal_error": ServerError,
}
_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    422: Conflict,
    415: InvalidRequest,
    429: QueueFull,
    503: Unavailable,
}


def error_class(status: int, code: str) -> type[ApiError]:
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ApiError
    return cls
