"""Group commit: the submissions waitress's loop thread serves in one pass share one Redis call.

After a poll the loop thread often holds several complete POST /jobs from different clients
(6 on average with 8 busy keep-alive clients and one API process). Served one after another,
each pays for its own round trip: a pool checkout, a send, a wait, a receive and a script call's
fixed cost in Redis. Here each request of the pass runs in a greenlet up to its enqueue and
pauses there; the loop sends every paused enqueue as one enqueue script call (the path
POST /jobs/batch takes) and resumes each request with its own result, to answer it.

Each client gets the answer it would have got alone:
- validation, auth and every other check run before the enqueue, in the request's own greenlet;
- the enqueue script is all or nothing: when the shared call reports a full queue, the
  enqueues are sent again one at a time, in order, so each request is judged alone;
- any other error (Redis unreachable, a timeout) is raised in every paused request, which
  answers it as it would have alone; the pass cost one stall, not one per request;
- the same idempotency key twice in one call gives both requests the first job, as sending
  them in turn would (the script checks keys within a batch).

greenlet (the C extension under gevent and SQLAlchemy's asyncio bridge) switches stacks inside
one thread: the requests of a pass never run at the same time, so no locking changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from greenlet import getcurrent, greenlet

from workstream.api.dispatch import Task
from workstream.common.errors import QueueFullError
from workstream.common.jobs import EnqueueResult, JobSpec, new_job_id
from workstream.common.store import JobStore

# Jobs per shared script call: a pass can hold up to connection_limit requests of up to 64 KiB
# each; a call this size keeps Redis's time inside one script short (a few ms).
GROUP_MAX_JOBS = 100


class _Request(greenlet):
    """A request served in a group; it pauses at its enqueue (`enqueue` below)."""

    def __init__(self, task: Task, loop: greenlet) -> None:
        super().__init__(self._serve, parent=loop)
        self.loop = loop
        self.task = task
        self.pending: tuple[JobSpec, str] | None = None
        self.failure: BaseException | None = None

    def _serve(self) -> None:
        try:
            self.task()
        except BaseException as ex:  # reported by serve_together, after the rest
            self.failure = ex


class GroupCommitStore(JobStore):
    """A JobStore whose single enqueues, made by requests run through `serve_together`, are
    sent to Redis together. Anywhere else (pool threads, the worker) it is a plain JobStore."""

    def enqueue(self, spec: JobSpec, job_id: str | None = None) -> EnqueueResult:
        current = getcurrent()
        if not isinstance(current, _Request):
            return super().enqueue(spec, job_id)
        current.pending = (spec, job_id or new_job_id())
        outcome = current.loop.switch()  # resumed by _commit with the result or an error
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, EnqueueResult)
        return outcome

    def serve_together(self, tasks: Sequence[Task]) -> None:
        """Runs the tasks (requests) to their end; their enqueues go to Redis in one call."""
        if len(tasks) == 1:
            tasks[0]()
            return
        loop = getcurrent()
        requests = [_Request(task, loop) for task in tasks]
        for request in requests:
            request.switch()  # to its enqueue, or to its end when it has none (an error reply)
        paused = [request for request in requests if request.pending is not None]
        while paused:
            self._commit(paused)  # resumes each; one may enqueue again and pause once more
            paused = [request for request in paused if request.pending is not None]
        failures = [request.failure for request in requests if request.failure is not None]
        if failures:
            raise failures[0]

    def _commit(self, paused: list[_Request]) -> None:
        # After an error the rest of the pass gets it too: a stalled Redis costs one stall.
        failed: Exception | None = None
        for start in range(0, len(paused), GROUP_MAX_JOBS):
            chunk = paused[start : start + GROUP_MAX_JOBS]
            pending: list[tuple[JobSpec, str]] = []
            for request in chunk:
                assert request.pending is not None
                pending.append(request.pending)
                request.pending = None
            outcomes: list[Any]
            if failed is not None:
                outcomes = [failed] * len(pending)
            else:
                try:
                    outcomes = self._enqueue_together(pending)
                except Exception as ex:  # each request answers it as it would alone
                    failed, outcomes = ex, [ex] * len(pending)
            for request, outcome in zip(chunk, outcomes, strict=True):
                request.switch(outcome)

    def _enqueue_together(self, pending: list[tuple[JobSpec, str]]) -> list[Any]:
        """Each job's result; after a full queue, each job's result or error alone."""
        try:
            return JobStore.enqueue_many(
                self, [spec for spec, _ in pending], [job_id for _, job_id in pending]
            )
        except QueueFullError:
            return [self._enqueue_alone(spec, job_id) for spec, job_id in pending]

    def _enqueue_alone(self, spec: JobSpec, job_id: str) -> EnqueueResult | Exception:
        try:
            return JobStore.enqueue(self, spec, job_id)
        except Exception as ex:  # raised in the request that sent it
            return ex
