"""/leases and the answers to a lease: the worker protocol for consumers in any language.

POST /leases takes jobs (long-polling up to `wait` seconds), POST /jobs/{id}/complete, /fail and
/extend answer them under the lease token. A stale, unknown or expired token is 409 lease_lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import falcon

from workstream.api import validation
from workstream.api.errors import ApiError, validation_error
from workstream.common.deps import parent_results
from workstream.common.jobs import QUEUE_PATTERN
from workstream.common.keys import Keys
from workstream.common.leases import (
    MAX_LEASE_COUNT,
    MAX_LEASE_S,
    MIN_LEASE_S,
    Lease,
    LeaseLostError,
    Leases,
)
from workstream.common.serialization import dumps, ms_to_rfc3339
from workstream.common.shards import shard_of
from workstream.common.store import JobStore

MAX_LEASE_QUEUES = 32
MAX_WAIT_S = 60.0
DEFAULT_LEASE_S = 60.0
MAX_TOKEN_CHARS = 64
MAX_ERROR_CHARS = 4000  # as the Python worker bounds a handler's error text
MAX_PROGRESS_BYTES = 4096
CONSUMER_PATTERN = QUEUE_PATTERN  # [A-Za-z0-9_.-]{1,64}
FIRST_INTERVAL_S = 0.02
MAX_INTERVAL_S = 0.25

LEASE_FIELDS = frozenset({"queues", "count", "wait", "lease_s", "consumer"})
COMPLETE_FIELDS = frozenset({"lease", "result"})
FAIL_FIELDS = frozenset({"lease", "error", "retry"})
EXTEND_FIELDS = frozenset({"lease", "lease_s", "progress"})


class LeaseWaiter:
    """Long-polls for jobs without starving the thread pool: at most `capacity` requests wait
    at once (the rest answer at once, possibly empty); `stopping` ends every wait (shutdown)."""

    def __init__(
        self,
        capacity: int,
        *,
        stopping: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slots = threading.BoundedSemaphore(max(capacity, 1))
        self._stopping = stopping or threading.Event()
        self._clock = clock

    def poll(self, take: Callable[[], list[Lease]], seconds: float) -> list[Lease]:
        leases = take()
        if leases or seconds <= 0 or not self._slots.acquire(blocking=False):
            return leases
        try:
            deadline = self._clock() + seconds
            interval = FIRST_INTERVAL_S
            while not leases:
                left = deadline - self._clock()
                # Event.wait doubles as a sleep that shutdown can cut short.
                if left <= 0 or self._stopping.wait(min(interval, left)):
                    break
                leases = take()
                interval = min(interval * 1.5, MAX_INTERVAL_S)
            return leases
        finally:
            self._slots.release()


class LeaseCollection:
    def __init__(self, store: JobStore, waiter: LeaseWaiter) -> None:
        self._leases = Leases(store)
        self._waiter = waiter
        self._redis, self._keys = store.redis, store.keys
        self._limit = store.settings.max_payload_bytes

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = _object(validation.read_json(req, self._limit), LEASE_FIELDS)
        queues = _queues(data.get("queues"))
        count = _int(data, "count", 1, MAX_LEASE_COUNT, 1)
        wait = _number(data, "wait", 0, MAX_WAIT_S, 0.0)
        lease_s = _number(data, "lease_s", MIN_LEASE_S, MAX_LEASE_S, DEFAULT_LEASE_S)
        consumer = _name(data, "consumer")
        host = req.remote_addr or ""

        def take() -> list[Lease]:
            return self._leases.lease(consumer, queues, count, lease_s, host)[0]

        leases = self._waiter.poll(take, wait)
        resp.media = {
            "leases": [
                {
                    "job": x.job.to_json(),
                    "lease": x.token,
                    "expires_at": ms_to_rfc3339(x.expires_at),
                    # depends_on's results, read now (every parent has ended): {} for none.
                    "parent_results": (
                        parent_results(self._redis, self._job_keys(x.job.id), x.job.id)
                        if x.job.depends_on
                        else {}
                    ),
                }
                for x in leases
            ]
        }

    def _job_keys(self, job_id: str) -> Keys:
        """The keys of the job's shard (its id names it: a job with parents has a store-made
        or client id, never a script's plain id in a named shard)."""
        return Keys(self._keys.namespace, shard_of(job_id))


class LeaseAnswers:
    """POST /jobs/{id}/complete | fail | extend, each under the lease token."""

    def __init__(self, store: JobStore) -> None:
        self._leases = Leases(store)
        self._limit = store.settings.max_payload_bytes

    def on_post_complete(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job_id = validation.job_id(job_id)
        data = _object(validation.read_json(req, self._limit), COMPLETE_FIELDS)
        token, result = _token(data), _json(data, "result", self._limit)
        with _lease_lost():
            resp.media = self._leases.complete(job_id, token, result).to_json()

    def on_post_fail(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job_id = validation.job_id(job_id)
        data = _object(validation.read_json(req, self._limit), FAIL_FIELDS)
        token, error = _token(data), _text(data, "error", MAX_ERROR_CHARS)
        retry = data.get("retry", True)
        if not isinstance(retry, bool):
            raise validation_error("retry", "expected true or false")
        with _lease_lost():
            resp.media = self._leases.fail(job_id, token, error, retry=retry).to_json()

    def on_post_extend(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job_id = validation.job_id(job_id)
        data = _object(validation.read_json(req, self._limit), EXTEND_FIELDS)
        token = _token(data)
        lease_s = _number(data, "lease_s", MIN_LEASE_S, MAX_LEASE_S, DEFAULT_LEASE_S)
        progress = _json(data, "progress", MAX_PROGRESS_BYTES) if "progress" in data else ""
        with _lease_lost():
            expires, cancel = self._leases.extend(job_id, token, lease_s, progress)
        resp.media = {"expires_at": ms_to_rfc3339(expires), "cancel_requested": cancel}


@contextmanager
def _lease_lost() -> Iterator[None]:
    try:
        yield
    except LeaseLostError as ex:
        raise ApiError(409, "lease_lost", str(ex)) from None


def _object(data: Any, fields: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise validation_error("body", "expected a JSON object")
    unknown = sorted(set(data) - fields)
    if unknown:
        raise validation_error(unknown[0], "unknown field")
    return data


def _queues(value: Any) -> list[str]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LEASE_QUEUES:
        raise validation_error("queues", f"expected an array of 1 to {MAX_LEASE_QUEUES} names")
    for name in value:
        if not isinstance(name, str) or not QUEUE_PATTERN.fullmatch(name):
            raise validation_error("queues", f"expected names matching {QUEUE_PATTERN.pattern}")
    if len(set(value)) != len(value):
        raise validation_error("queues", "a queue is named twice")
    return value


def _int(data: Mapping[str, Any], field: str, low: int, high: int, default: int) -> int:
    value = data.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise validation_error(field, f"expected an integer from {low} to {high}")
    return value


def _number(data: Mapping[str, Any], field: str, low: float, high: float, default: float) -> float:
    value = data.get(field, default)
    # Compared before float(): 10**400 is out of range, not an OverflowError; nan fails both.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise validation_error(field, f"expected a number from {low:g} to {high:g}")
    return float(value)


def _name(data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not CONSUMER_PATTERN.fullmatch(value):
        raise validation_error(field, f"expected a name matching {CONSUMER_PATTERN.pattern}")
    return value


def _token(data: Mapping[str, Any]) -> str:
    """A string, else 400. One this API did not hand out is an unknown lease (409), not bad
    input: the scripts tell it apart from a stale one no better than the client can."""
    value = data.get("lease")
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TOKEN_CHARS:
        raise validation_error("lease", f"expected the lease token, 1 to {MAX_TOKEN_CHARS} chars")
    return value


def _text(data: Mapping[str, Any], field: str, limit: int) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise validation_error(field, f"expected a string of 1 to {limit} characters")
    return value


def _json(data: Mapping[str, Any], field: str, limit: int) -> str:
    try:
        text = dumps(data.get(field))
    except (TypeError, ValueError) as ex:
        raise validation_error(field, f"cannot be stored as JSON: {ex}") from None
    if len(text.encode()) > limit:
        raise validation_error(field, f"expected at most {limit} bytes of JSON")
    return text
