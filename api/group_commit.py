"""Group commit: the submissions waiting at the same moment share one Redis call.

Request threads (waitress's pool) hand each single enqueue (POST /jobs) to one committer
thread and wait for their own answer. The committer sends everything waiting as one enqueue
script call (the call POST /jobs/batch makes) and hands each request its result. Under load
several requests wait while a call is out, so the next call carries them all: one round trip
and one script call's fixed cost in Redis instead of one each. Alone, a request pays a hand-off
to the committer and back.

Each client gets the answer it would have got alone:
- its payload is validated and encoded in its own thread before it joins a group, so a payload
  that cannot be stored is that request's 400 and never reaches the shared call;
- the script is all or nothing: when the shared call reports a full queue, or fails for any
  reason but Redis being unavailable, each job is sent again alone, in order, and each request
  gets its own answer;
- Redis unavailable (no connection, a timeout, a refusing reply such as OOM or BUSY) is every
  request's answer: one stall, not one per request;
- the same idempotency key twice in one call gives both requests the first job, as sending them
  in turn would (the script checks keys within a batch).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import TypeAlias

import redis

from workstream.common.errors import QueueFullError
from workstream.common.jobs import EnqueueResult, JobSpec, new_job_id
from workstream.common.redis_conn import is_unavailable
from workstream.common.settings import Settings
from workstream.common.store import JobStore

log = logging.getLogger(__name__)

# Jobs per shared call: one call this size keeps Redis's time inside one script short (a few ms).
GROUP_MAX_JOBS = 100
# A request waits at most this long for its answer: far longer than a Redis call can take
# (socket timeout 10 s), so it only ends a wait on a committer that died.
ANSWER_TIMEOUT_S = 60.0

Send: TypeAlias = Callable[[Sequence[JobSpec], Sequence[str]], list[EnqueueResult]]
Outcome: TypeAlias = EnqueueResult | Exception


class _Submission:
    """One request's enqueue, waiting for the committer's answer."""

    __slots__ = ("_answered", "job_id", "outcome", "spec")

    def __init__(self, spec: JobSpec, job_id: str) -> None:
        self.spec = spec
        self.job_id = job_id
        self.outcome: Outcome | None = None
        self._answered = threading.Lock()  # held until answered: the cheapest one-shot signal
        self._answered.acquire()

    def answer(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self._answered.release()

    def wait(self, timeout_s: float) -> EnqueueResult:
        if not self._answered.acquire(timeout=timeout_s):
            raise redis.exceptions.TimeoutError(f"no enqueue answer in {timeout_s:.0f} s")
        if isinstance(self.outcome, Exception):
            raise self.outcome
        assert self.outcome is not None
        return self.outcome


def is_shared_failure(ex: Exception) -> bool:
    """True when the error is every request's answer (Redis unavailable), not one job's."""
    return isinstance(ex, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError) or (
        is_unavailable(ex)
    )


class GroupCommitter:
    """One thread that sends the enqueues waiting for it through `send`, up to `max_jobs`
    per call."""

    def __init__(self, send: Send, max_jobs: int = GROUP_MAX_JOBS) -> None:
        self._send = send
        self._max_jobs = max_jobs
        self._waiting: queue.SimpleQueue[_Submission | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def enqueue(self, spec: JobSpec, job_id: str) -> EnqueueResult:
        if self._closed:  # after shutdown: alone, in this thread
            return self._send([spec], [job_id])[0]
        submission = _Submission(spec, job_id)
        self._waiting.put(submission)
        return submission.wait(ANSWER_TIMEOUT_S)

    def waiting(self) -> int:
        """Enqueues handed over and not yet taken into a group."""
        return self._waiting.qsize()

    def close(self, timeout_s: float = 5.0) -> None:
        """Answers what is waiting, then ends the thread."""
        self._closed = True
        self._waiting.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            first = self._waiting.get()
            if first is None:
                return
            group = [first]
            closing = False
            while len(group) < self._max_jobs:
                try:
                    more = self._waiting.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                    break
                group.append(more)
            self._commit(group)
            if closing:
                return

    def _commit(self, group: list[_Submission]) -> None:
        try:
            outcomes = self._outcomes(group)
        except BaseException as ex:  # a bug here must not leave requests waiting
            log.exception("api.group_commit_failed", extra={"jobs": len(group)})
            error = ex if isinstance(ex, Exception) else RuntimeError(repr(ex))
            outcomes = [error] * len(group)
        for submission, outcome in zip(group, outcomes, strict=True):
            submission.answer(outcome)

    def _outcomes(self, group: list[_Submission]) -> list[Outcome]:
        try:
            return list(self._send([s.spec for s in group], [s.job_id for s in group]))
        except Exception as ex:
            if is_shared_failure(ex) or len(group) == 1:
                return [ex] * len(group)
            if not isinstance(ex, QueueFullError):
                log.warning(
                    "api.group_commit_split",
                    extra={"jobs": len(group), "error": f"{type(ex).__name__}: {ex}"},
                )
            return [self._alone(submission) for submission in group]

    def _alone(self, submission: _Submission) -> Outcome:
        try:
            return self._send([submission.spec], [submission.job_id])[0]
        except Exception as ex:  # raised in the request that sent it
            return ex


class GroupCommitStore(JobStore):
    """A JobStore whose single enqueues (POST /jobs) go through one GroupCommitter."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        super().__init__(client, settings)
        self.committer = GroupCommitter(super().enqueue_many)

    def enqueue(self, spec: JobSpec, job_id: str | None = None) -> EnqueueResult:
        spec.payload_json()  # a payload that cannot be stored fails here, for this request only
        return self.committer.enqueue(spec, job_id or new_job_id())

    def close(self) -> None:
        self.committer.close()
