"""The blocking client. AsyncClient (workstream.client.aio) has the same methods as
coroutines."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from workstream.client import calls, events
from workstream.client.calls import Call, JobRequest, RetryPolicy
from workstream.client.errors import ApiError
from workstream.client.events import StreamEvent
from workstream.client.models import Health, Job, JobPage, Queue, Submitted, Worker

T = TypeVar("T")


class Client:
    """A WorkStream API client: one connection pool, an optional bearer token, bounded retries.

    `timeout` is seconds for connecting and for each read (a long-poll gets its wait on top).
    `retry_policy` bounds the retries of 503 answers (nothing was written) and of connection
    failures; `RetryPolicy(attempts=1)` turns them off. `transport` is any httpx transport
    (a proxy, a test double); the default is httpx's own."""

    def __init__(
        self,
        url: str = calls.DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = calls.DEFAULT_TIMEOUT_S,
        retry_policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.strip().rstrip("/")
        try:
            parts = httpx.URL(self.url)
        except httpx.InvalidURL as ex:
            raise ValueError(f"bad URL {url!r}: {ex}") from None
        if parts.scheme not in ("http", "https") or not parts.host:
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        self.retry_policy = retry_policy or RetryPolicy()
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )
        self._timeout = timeout

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, ex: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, call: Call[T]) -> T:
        for attempt in range(1, self.retry_policy.attempts + 1):
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.body,
                    headers=call.headers or None,
                    timeout=self._timeout if call.timeout is None else call.timeout,
                )
                return calls.decode(call, response)
            except (ApiError, httpx.TransportError) as ex:
                if attempt == self.retry_policy.attempts or not calls.retryable(call, ex):
                    if isinstance(ex, httpx.TransportError):
                        raise calls.transport_error(self.url, ex) from None
                    raise
                retry_after = ex.retry_after if isinstance(ex, ApiError) else None
                time.sleep(self.retry_policy.pause(attempt, retry_after))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- jobs ------------------------------------------------------------------------------

    def submit(
        self,
        type: str,
        payload: Any = None,
        *,
        queue: str | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        delay: float | None = None,
        run_at: datetime | str | None = None,
        idempotency_key: str | None = None,
        unique: Mapping[str, Any] | None = None,
        expires_at: datetime | str | None = None,
        expires_in: float | str | None = None,
        id: str | None = None,
        depends_on: Sequence[str] | None = None,
        on_parent_failure: str | None = None,
        priority: int | None = None,
        callback_url: str | None = None,
    ) -> Job:
        """Submits one job and returns it. Without an idempotency key one is made up, so
        the client's own retries can never create two jobs; give your own to make retries
        across processes safe too (the same key returns the original job; the key with a
        different request raises Conflict, idempotency_conflict). unique ({"key", "ttl",
        "until"}) raises Conflict (duplicate_job, `job_id` the holder) while a live job holds
        the key; a job not started by expires_at (or expires_in) is cancelled, "expired".
        id: your own job id (the same request again returns the job; another request raises
        Conflict, id_conflict). depends_on: ids of jobs that must complete first (the job
        waits, status waiting; on_parent_failure "cancel", the default, or "run" says what a
        parent that fails or is cancelled does); unknown ids raise BadRequest
        (unknown_parents). priority: 0-9, higher first within the queue, first in first out
        within a level (None: 0); anything else raises BadRequest (validation_error).
        callback_url: when the job ends (completed, failed, cancelled), the job's final record
        (as get() answers it) is POSTed there by an http job (`callback_job_id` on the job);
        a malformed URL or a forbidden address raises BadRequest (invalid_url,
        target_forbidden)."""
        request = JobRequest(
            type,
            payload,
            queue,
            max_attempts,
            timeout,
            delay,
            run_at,
            idempotency_key,
            unique=unique,
            expires_at=expires_at,
            expires_in=expires_in,
            id=id,
            depends_on=depends_on,
            on_parent_failure=on_parent_failure,
            priority=priority,
            callback_url=callback_url,
        )
        return self._run(calls.submit_call(request))

    def submit_many(self, jobs: Iterable[JobRequest | Mapping[str, Any]]) -> list[Submitted]:
        """Submits 1 to 1,000 jobs all or nothing; each entry says whether it was created."""
        return self._run(calls.submit_many_call(jobs))

    def get(self, job_id: str) -> Job:
        return self._run(calls.get_call(job_id))

    def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        """Long-polls until the job is finished or `timeout` seconds pass; returns the job as
        last seen (check `job.finished`)."""
        deadline = time.monotonic() + max(timeout, 0.0)
        job = self._run(calls.get_call(job_id, timeout, self._timeout))
        # Each round either waits its whole step or pauses EARLY_ANSWER_PAUSE_S.
        for _ in range(math.ceil(max(timeout, 0.0) / calls.EARLY_ANSWER_PAUSE_S)):
            left = deadline - time.monotonic()
            if job.finished or left <= 0:
                break
            asked_at = time.monotonic()
            job = self._run(calls.get_call(job_id, left, self._timeout))
            if not job.finished and time.monotonic() - asked_at < min(left, 60) - 1:
                time.sleep(min(calls.EARLY_ANSWER_PAUSE_S, max(deadline - time.monotonic(), 0)))
        return job

    def cancel(self, job_id: str) -> Job:
        """pending or scheduled -> cancelled at once (200). A processing job is asked to stop
        (202): it stays processing with cancel_requested True until its handler stops or
        finishes, and then ends cancelled. Conflict (invalid_transition) once it finished."""
        return self._run(calls.job_action_call(job_id, "cancel"))

    def retry(self, job_id: str) -> Job:
        """failed -> pending with attempts reset; Conflict otherwise."""
        return self._run(calls.job_action_call(job_id, "retry"))

    def delete(self, job_id: str) -> None:
        """Deletes a finished job's record; Conflict while it is not finished."""
        self._run(calls.delete_call(job_id))

    def list_jobs(
        self,
        *,
        status: str | None = None,
        queue: str | None = None,
        type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """One page, newest first (limit 1 to 500); pass `page.next_cursor` for the next."""
        return self._run(calls.list_call(status, queue, type, limit, cursor))

    def iter_jobs(
        self,
        *,
        status: str | None = None,
        queue: str | None = None,
        type: str | None = None,
        page_size: int = calls.MAX_PAGE,
    ) -> Iterator[Job]:
        """Every matching job, newest first, fetched a page at a time as you iterate."""
        cursor: str | None = None
        while True:
            page = self.list_jobs(
                status=status, queue=queue, type=type, limit=page_size, cursor=cursor
            )
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # -- queues, workers, health -----------------------------------------------------------

    def queues(self) -> list[Queue]:
        return self._run(calls.QUEUES)

    def queue(self, name: str) -> Queue:
        return self._run(calls.queue_call("GET", name))

    def pause(self, name: str) -> Queue:
        return self._run(calls.queue_call("POST", name, "/pause"))

    def resume(self, name: str) -> Queue:
        return self._run(calls.queue_call("POST", name, "/resume"))

    def retry_failed(self, name: str) -> int:
        """Requeues every failed job of a queue; returns how many."""
        return self._run(calls.failed_call(name, "retry"))

    def purge_failed(self, name: str) -> int:
        """Deletes every failed job of a queue; returns how many."""
        return self._run(calls.failed_call(name, "purge"))

    def delete_queue(self, name: str) -> None:
        """Forgets an empty queue; Conflict (queue_not_empty) otherwise."""
        self._run(calls.delete_queue_call(name))

    def workers(self) -> list[Worker]:
        return self._run(calls.WORKERS)

    # -- batches (JSON objects as GET /batches/{id} answers them) ----------------------------

    def create_batch(
        self,
        jobs: Iterable[JobRequest | Mapping[str, Any]] = (),
        *,
        on_complete: Mapping[str, Any] | None = None,
        on_success: Mapping[str, Any] | None = None,
        open: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Creates a batch with up to 1,000 jobs and its callbacks (job objects: type,
        payload, queue, max_attempts, timeout), sealed unless `open` (or no jobs). The
        callback's payload gets `batch`: the summary. A retry sends the same Idempotency-Key
        (made up when none is given), so it never creates a second batch."""
        call = calls.create_batch_call(jobs, on_complete, on_success, open, idempotency_key)
        return self._run(call)

    def add_to_batch(
        self,
        batch_id: str,
        jobs: Iterable[JobRequest | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Adds up to 1,000 jobs to an open batch, all or nothing; safe to retry (see
        create_batch). Conflict (batch_sealed) once the batch is sealed."""
        return self._run(calls.add_batch_call(batch_id, jobs, idempotency_key))

    def seal_batch(self, batch_id: str) -> dict[str, Any]:
        """No more jobs; the batch settles (its callbacks created) once every member ended."""
        return self._run(calls.batch_call(batch_id, "/seal"))

    def batch(self, batch_id: str, *, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        """The batch with counts, progress and a page of member ids (`next_cursor`)."""
        params = {"limit": str(limit), **({} if cursor is None else {"cursor": cursor})}
        return self._run(calls.batch_call(batch_id, params=params))

    def batches(self, *, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        """A page of batches, newest first: {"batches": [...], "next_cursor": ...}."""
        return self._run(calls.batches_call(limit, cursor))

    # -- schedules (JSON objects as GET /schedules/{id} answers them) ------------------------

    def schedules(self) -> list[dict[str, Any]]:
        return self._run(calls.SCHEDULES)

    def schedule(self, schedule_id: str) -> dict[str, Any]:
        return self._run(calls.schedule_call("GET", schedule_id))

    def put_schedule(self, schedule_id: str, definition: Mapping[str, Any]) -> dict[str, Any]:
        """Creates or replaces a schedule: `cron` (+ `timezone`) or `every`, a `job` template,
        optionally `paused` and `missed` (run_once or skip)."""
        return self._run(calls.schedule_call("PUT", schedule_id, body=dict(definition)))

    # -- limits (a queue's, as GET /queues/{name}/limits answers them) ----------------------

    def limits(self, queue: str) -> dict[str, Any]:
        return self._run(calls.limits_call("GET", queue))

    def set_limits(
        self,
        queue: str,
        *,
        rate: str | None = None,
        concurrency: int | None = None,
        group_concurrency: int | None = None,
    ) -> dict[str, Any]:
        """Replaces the queue's limits: rate ("50/s", "1000/m", "10/h"), concurrency and
        group_concurrency across all workers; None for no limit."""
        body = {"rate": rate, "concurrency": concurrency, "group_concurrency": group_concurrency}
        return self._run(calls.limits_call("PUT", queue, body))

    def clear_limits(self, queue: str) -> None:
        self._run(calls.clear_limits_call(queue))

    def delete_schedule(self, schedule_id: str) -> None:
        self._run(calls.delete_schedule_call(schedule_id))

    def pause_schedule(self, schedule_id: str) -> dict[str, Any]:
        return self._run(calls.schedule_call("POST", schedule_id, "/pause"))

    def resume_schedule(self, schedule_id: str) -> dict[str, Any]:
        return self._run(calls.schedule_call("POST", schedule_id, "/resume"))

    def health(self) -> Health:
        """Never raises for a 503: `health().ok` is False when Redis does not answer."""
        return self._run(calls.HEALTH)

    # -- events ----------------------------------------------------------------------------

    def events(
        self,
        *,
        queue: str | None = None,
        type: str | None = None,
        job: str | None = None,
        since: str | None = None,
        follow: bool = True,
    ) -> Iterator[StreamEvent]:
        """Job events (GET /events) after `since` (an event id, a time in ms, "0" for the
        oldest kept; None: from now on), filtered by queue, type or job; `follow` keeps
        reading forever, else it stops once caught up. A `gap` event says entries after
        `since` were trimmed (EVENTS_MAX) before they could be read."""
        params = {
            name: value
            for name, value in (("queue", queue), ("type", type), ("job", job))
            if value is not None
        }
        return events.follow(
            self._http,
            self.url,
            self.retry_policy,
            self._timeout,
            params=params,
            since=since,
            follow=follow,
        )
