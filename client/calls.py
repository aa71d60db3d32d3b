"""What Client and AsyncClient share: each endpoint as a `Call` (request + how to read the
answer + whether it may be sent twice), the retry policy, and turning answers into models or
errors. The two clients only differ in how they send and sleep."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

import httpx

from workstream.client.errors import ApiError, TransportError, error_class
from workstream.client.models import Health, Job, JobPage, Queue, Submitted, Worker

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_S = 30.0
MAX_BATCH = 1000  # the API's cap on POST /jobs/batch
MAX_PAGE = 500  # the API's cap on GET /jobs?limit=
MAX_SERVER_WAIT_S = 60.0  # the API's cap on GET /jobs/{id}?wait=
# The socket must outlive the server's long-poll.
WAIT_SLACK_S = 15.0
# A long-poll answered early and unfinished (the API had no free waiting slot) is repeated
# after this pause rather than at once.
EARLY_ANSWER_PAUSE_S = 0.5


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries for answers that promise nothing was written (503) and for connection
    failures. `attempts` counts every try, the first included; a pause is the server's
    Retry-After when it gave one, else `backoff` doubling per try, never over `max_pause`."""

    attempts: int = 4
    backoff: float = 0.5
    max_pause: float = 30.0

    def pause(self, retry: int, retry_after: float | None) -> float:
        wanted = retry_after if retry_after is not None else self.backoff * 2 ** (retry - 1)
        return min(max(wanted, 0.0), self.max_pause)


NO_RETRY = RetryPolicy(attempts=1)


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    # Safe to send again when we cannot know whether the server acted (the connection broke
    # after the request went out): reads, and submits, which always carry an idempotency key.
    replayable: bool = True
    timeout: float | None = None  # overrides the client's read timeout (long-poll)
    accept: frozenset[int] = frozenset()  # error statuses that carry an answer, not an error
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. Idempotency-Key


@dataclass(frozen=True)
class JobRequest:
    """One job to submit (`Client.submit_many`). Give `delay` (seconds) or `run_at` (an aware
    datetime or RFC 3339 text), not both; None leaves the server's default."""

    type: str
    payload: Any = None
    queue: str | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    delay: float | None = None
    run_at: datetime | str | None = None
    idempotency_key: str | None = None
    group: str | None = None  # capped by the queue's group_concurrency
    priority: int | None = None  # 0-9, higher first within the queue; None: 0
    # {"key", "ttl", "until"}: refused (Conflict, duplicate_job) while a live job holds the key
    unique: Mapping[str, Any] | None = None
    expires_at: datetime | str | None = None  # not started by then: cancelled ("expired")
    expires_in: float | str | None = None  # the same, seconds (or "10m") after submission
    # Your own id for the job (the idempotency key's characters): the same request under it
    # again answers the job, another request Conflict (id_conflict). None: the server's.
    id: str | None = None
    # Ids of jobs (or of jobs in the same submit_many) that must end first: the job waits
    # (status waiting) until each has completed; on_parent_failure "cancel" (the default:
    # cancelled, error parent_failed) or "run" when one fails or is cancelled.
    depends_on: Sequence[str] | None = None
    on_parent_failure: str | None = None
    # Where the job's final record is POSTed when it ends (an http job, retried like any).
    callback_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The request body; an idempotency key is made up when none was given, so a retried
        submit can never create a second job."""
        body: dict[str, Any] = {"type": self.type, "payload": self.payload}
        for name in (
            "queue", "max_attempts", "timeout", "delay", "group", "expires_in", "id",
            "on_parent_failure", "priority",
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.unique is not None:
            body["unique"] = dict(self.unique)
        if self.depends_on is not None:
            body["depends_on"] = list(self.depends_on)
        if self.run_at is not None:
            body["run_at"] = format_time(self.run_at)
        if self.expires_at is not None:
            body["expires_at"] = format_time(self.expires_at)
        if self.callback_url is not None:
            body["callback_url"] = self.callback_url
        body["idempotency_key"] = self.idempotency_key or new_idempotency_key()
        return body


def new_idempotency_key() -> str:
    return f"ws-{uuid.uuid4().hex}"


def format_time(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        # A naive time means a different instant on every machine: refuse rather than guess.
        raise ValueError("run_at must be timezone-aware (e.g. datetime.now(timezone.utc))")
    utc = value.astimezone(timezone.utc)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- answers ---------------------------------------------------------------------------------


def _object(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ApiError(200, "invalid_response", "expected a JSON object from the API")
    return data


def _list(data: Any, key: str) -> list[Mapping[str, Any]]:
    items = _object(data).get(key)
    if not isinstance(items, list):
        raise ApiError(200, "invalid_response", f"expected {key!r} to be a list")
    return [item for item in items if isinstance(item, Mapping)]


def job(data: Any) -> Job:
    return Job.from_json(_object(data))


def page(data: Any) -> JobPage:
    cursor = _object(data).get("next_cursor")
    jobs = tuple(Job.from_json(item) for item in _list(data, "jobs"))
    return JobPage(jobs, cursor if isinstance(cursor, str) and cursor else None)


def submitted(data: Any) -> list[Submitted]:
    return [Submitted.from_json(item) for item in _list(data, "jobs")]


def queue(data: Any) -> Queue:
    return Queue.from_json(_object(data))


def queues(data: Any) -> list[Queue]:
    return [Queue.from_json(item) for item in _list(data, "queues")]


def workers(data: Any) -> list[Worker]:
    return [Worker.from_json(item) for item in _list(data, "workers")]


def health(data: Any) -> Health:
    return Health.from_json(_object(data))


def nothing(data: Any) -> None:
    return None


def count(key: str) -> Callable[[Any], int]:
    def read(data: Any) -> int:
        value = _object(data).get(key)
        return value if isinstance(value, int) else 0

    return read


def decode(call: Call[T], response: httpx.Response) -> T:
    """The parsed answer, or the ApiError subclass for the error's code."""
    status = response.status_code
    try:
        data = json.loads(response.content) if response.content else None
    except ValueError:
        data = None
        if status < 400:
            raise ApiError(status, "invalid_response", "the API answered with non-JSON") from None
    if status >= 400 and status not in call.accept:
        raise error_from(status, data, response.text, response.headers)
    return call.parse(data)


def error_from(status: int, data: Any, text: str, headers: Mapping[str, str]) -> ApiError:
    code, message, field_name, job_id = f"http_{status}", text.strip()[:200], None, None
    error = data.get("error") if isinstance(data, Mapping) else None
    if isinstance(error, Mapping):
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        field_name = error.get("field") if isinstance(error.get("field"), str) else None
        job_id = error.get("job_id") if isinstance(error.get("job_id"), str) else None
    cls = error_class(status, code)
    message = message or f"HTTP {status}"
    return cls(status, code, message, field=field_name, headers=headers, job_id=job_id)


def transport_error(url: str, ex: httpx.TransportError) -> TransportError:
    if isinstance(ex, httpx.TimeoutException):
        reason = "timed out"
    elif isinstance(ex, httpx.ConnectError) and "refused" in str(ex).lower():
        reason = "connection refused"
    else:
        reason = str(ex).strip() or type(ex).__name__
    return TransportError(url, reason)


def unsent(ex: httpx.TransportError) -> bool:
    """The request never reached the server, so sending it again cannot do anything twice."""
    return isinstance(ex, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def retryable(call: Call[Any], failure: Exception) -> bool:
    if isinstance(failure, ApiError):
        return failure.status == 503
    if isinstance(failure, httpx.TransportError):
        return call.replayable or unsent(failure)
    return False


# -- endpoints -------------------------------------------------------------------------------


def _segment(value: str) -> str:
    if not value:
        raise ValueError("an id or name must not be empty")
    return urllib.parse.quote(value, safe="")


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def submit_call(request: JobRequest) -> Call[Job]:
    return Call("POST", "/jobs", job, body=request.to_json())


def submit_many_call(requests: Iterable[JobRequest | Mapping[str, Any]]) -> Call[list[Submitted]]:
    bodies = []
    for item in requests:
        if isinstance(item, JobRequest):
            bodies.append(item.to_json())
        else:
            key = item.get("idempotency_key") or new_idempotency_key()
            bodies.append({**item, "idempotency_key": key})
    if not 1 <= len(bodies) <= MAX_BATCH:
        raise ValueError(f"submit_many takes 1 to {MAX_BATCH} jobs, got {len(bodies)}")
    return Call("POST", "/jobs/batch", submitted, body={"jobs": bodies})


def get_call(job_id: str, wait: float = 0.0, timeout: float | None = None) -> Call[Job]:
    if wait <= 0:
        return Call("GET", "/jobs/" + _segment(job_id), job)
    wait = min(wait, MAX_SERVER_WAIT_S)
    read_timeout = max(timeout or 0.0, wait + WAIT_SLACK_S)
    params = {"wait": _seconds(wait)}
    return Call("GET", "/jobs/" + _segment(job_id), job, params=params, timeout=read_timeout)


def job_action_call(job_id: str, action: str) -> Call[Job]:
    # Not replayable: a cancel or retry that went through would answer 409 the second time.
    return Call("POST", f"/jobs/{_segment(job_id)}/{action}", job, replayable=False)


def delete_call(job_id: str) -> Call[None]:
    return Call("DELETE", "/jobs/" + _segment(job_id), nothing, replayable=False)


def list_call(
    status: str | None, queue: str | None, job_type: str | None, limit: int, cursor: str | None
) -> Call[JobPage]:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1 to {MAX_PAGE}, got {limit}")
    query = {"status": status, "queue": queue, "type": job_type, "cursor": cursor}
    params = {k: v for k, v in query.items() if v is not None}
    params["limit"] = str(limit)
    return Call("GET", "/jobs", page, params=params)


def queue_call(method: str, name: str, suffix: str = "") -> Call[Queue]:
    return Call(method, f"/queues/{_segment(name)}{suffix}", queue)


def failed_call(name: str, action: str) -> Call[int]:
    key = "retried" if action == "retry" else "purged"
    return Call("POST", f"/queues/{_segment(name)}/failed/{action}", count(key), replayable=False)


def delete_queue_call(name: str) -> Call[None]:
    return Call("DELETE", "/queues/" + _segment(name), nothing, replayable=False)


def limits(data: Any) -> dict[str, Any]:
    return dict(_object(data))


def limits_call(method: str, name: str, body: Any = None) -> Call[dict[str, Any]]:
    """GET, or PUT a queue's whole set of limits (sending it again does the same)."""
    return Call(method, f"/queues/{_segment(name)}/limits", limits, body=body)


def clear_limits_call(name: str) -> Call[None]:
    return Call("DELETE", f"/queues/{_segment(name)}/limits", nothing)


def schedule(data: Any) -> dict[str, Any]:
    return dict(_object(data))


def schedules(data: Any) -> list[dict[str, Any]]:
    return [dict(item) for item in _list(data, "schedules")]


def schedule_call(
    method: str, schedule_id: str, suffix: str = "", body: Any = None
) -> Call[dict[str, Any]]:
    """GET, PUT (a whole definition: sending it again does the same), pause and resume."""
    return Call(method, f"/schedules/{_segment(schedule_id)}{suffix}", schedule, body=body)


def delete_schedule_call(schedule_id: str) -> Call[None]:
    return Call("DELETE", "/schedules/" + _segment(schedule_id), nothing, replayable=False)


def _batch_entries(
    jobs: Iterable[JobRequest | Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], bool]:
    """Batch entries as sent, and whether any carries its own idempotency key (then those keys
    make a retry safe; else the call's Idempotency-Key does, and no entry may carry one)."""
    bodies: list[dict[str, Any]] = []
    keyed = False
    for item in jobs:
        if isinstance(item, JobRequest):
            body = item.to_json()
            if item.idempotency_key is None:
                del body["idempotency_key"]
        else:
            body = dict(item)
        keyed = keyed or body.get("idempotency_key") is not None
        bodies.append(body)
    if len(bodies) > MAX_BATCH:
        raise ValueError(f"a batch call takes at most {MAX_BATCH} jobs, got {len(bodies)}")
    return bodies, keyed


def _keyed(keyed: bool, key: str | None) -> dict[str, str]:
    return {} if keyed and key is None else {"Idempotency-Key": key or new_idempotency_key()}


def create_batch_call(
    jobs: Iterable[JobRequest | Mapping[str, Any]],
    on_complete: Mapping[str, Any] | None,
    on_success: Mapping[str, Any] | None,
    open_: bool,
    idempotency_key: str | None,
) -> Call[dict[str, Any]]:
    bodies, keyed = _batch_entries(jobs)
    body: dict[str, Any] = {"jobs": bodies} if bodies else {}
    if open_ or not bodies:
        body["open"] = True
    for name, callback in (("on_complete", on_complete), ("on_success", on_success)):
        if callback is not None:
            body[name] = dict(callback)
    headers = _keyed(keyed, idempotency_key)
    return Call("POST", "/batches", schedule, body=body, headers=headers)


def add_batch_call(
    batch_id: str, jobs: Iterable[JobRequest | Mapping[str, Any]], idempotency_key: str | None
) -> Call[dict[str, Any]]:
    bodies, keyed = _batch_entries(jobs)
    if not bodies:
        raise ValueError("add_to_batch takes 1 or more jobs")
    headers = _keyed(keyed, idempotency_key)
    path = f"/batches/{_segment(batch_id)}/jobs"
    return Call("POST", path, schedule, body={"jobs": bodies}, headers=headers)


def batch_call(
    batch_id: str, suffix: str = "", params: Mapping[str, str] | None = None
) -> Call[dict[str, Any]]:
    """GET a batch (a page of its members), or seal it (sealing again changes nothing)."""
    method = "POST" if suffix else "GET"
    return Call(method, f"/batches/{_segment(batch_id)}{suffix}", schedule, params=params or {})


def batches_call(limit: int, cursor: str | None) -> Call[dict[str, Any]]:
    params = {"limit": str(limit), **({} if cursor is None else {"cursor": cursor})}
    return Call("GET", "/batches", schedule, params=params)


SCHEDULES: Call[list[dict[str, Any]]] = Call("GET", "/schedules", schedules)
QUEUES: Call[list[Queue]] = Call("GET", "/queues", queues)
WORKERS: Call[list[Worker]] = Call("GET", "/workers", workers)
# /health answers 503 with a body when Redis is down: an answer, not an error.
HEALTH: Call[Health] = Call("GET", "/health", health, accept=frozenset({503}))
