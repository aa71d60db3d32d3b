"""The slot pool: WORKER_COUNT threads that run jobs, finish them and piggyback the next claim.

Finishing a job and claiming the next one share one round trip, so under a backlog a slot
needs one Redis call per job besides the handler's own work. Timeouts are enforced by a
watchdog that raises JobTimeoutError inside the slot's thread; a handler stuck in C code that
ignores it is abandoned (its lease is void) and a fresh thread takes the slot over.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import redis

from common.errors import JobNotFoundError, StaleLeaseError
from common.jobs import ClaimedJob
from common.logs import worker_id_var
from common.store import JobStore
from worker.execution import Outcome, run_job
from worker.registry import JobTimeoutError

log = logging.getLogger("worker.pool")

WATCHDOG_TICK_S = 0.1
ABANDON_AFTER_S = 2.0  # after the timeout was raised in the thread without effect
RETRY_CAP_S = 5.0
_T = TypeVar("_T")


def _raise_in_thread(thread_id: int, exc: type[BaseException] | None) -> None:
    """Schedules `exc` in another thread (None clears a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None
    )


class Slot:
    def __init__(self, pool: Pool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.job: ClaimedJob | None = None
        self.deadline = 0.0
        self.in_handler = False
        self.timeout_raised_at = 0.0
        self.abandoned = False
        self.thread = threading.Thread(target=self._loop, name=f"slot-{index}", daemon=True)

    def _loop(self) -> None:
        worker_id_var.set(self.pool.worker_id)
        while not self.abandoned:
            job = self.pool.dispatch.get()
            if job is None:
                return
            while job is not None and not self.abandoned:
                job = self._run(job)
            if self.abandoned:
                return
            self.pool.slot_idle()

    def _run(self, job: ClaimedJob) -> ClaimedJob | None:
        """Runs one attempt and finishes it; returns the next job claimed on the way, if any."""
        self.job = job
        self.deadline = time.monotonic() + job.timeout_ms / 1000
        self.in_handler = True
        try:
            outcome = run_job(job, self.pool.worker_id, self.pool.store.redis)
        except JobTimeoutError:  # raised just after the handler returned
            outcome = Outcome(False, error=f"timed out after {job.timeout_ms / 1000:g}s")
        finally:
            self.in_handler = False
        # The watchdog may have fired between the handler's return and the flag above.
        _raise_in_thread(threading.get_ident(), None)
        self.job = None
        if self.abandoned:
            return None  # the watchdog already failed this attempt; our lease is void
        return self.pool.finish(job, outcome)


class Pool:
    def __init__(
        self,
        store: JobStore,
        worker_id: str,
        size: int,
        queues: Sequence[str],
        stopping: threading.Event,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.size = size
        self.queues = list(queues)
        self.stopping = stopping
        self.dispatch: queue.SimpleQueue[ClaimedJob | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = size
        self._idle_changed = threading.Condition(self._lock)
        self.slots = [Slot(self, i) for i in range(size)]
        self._watchdog = threading.Thread(target=self._watch, name="watchdog", daemon=True)
        self.abandoned_threads = 0

    def start(self) -> None:
        for slot in self.slots:
            slot.thread.start()
        self._watchdog.start()

    # -- fetcher side ------------------------------------------------------------------------

    def wait_for_idle_slot(self, timeout_s: float) -> int:
        """Blocks until a slot is idle (or timeout); returns how many are idle."""
        with self._idle_changed:
            if self._idle == 0:
                self._idle_changed.wait(timeout_s)
            return self._idle

    def submit(self, jobs: Sequence[ClaimedJob]) -> None:
        with self._lock:
            self._idle -= len(jobs)
        for job in jobs:
            self.dispatch.put(job)

    def busy(self) -> int:
        with self._lock:
            return self.size - self._idle

    def slot_idle(self) -> None:
        with self._idle_changed:
            self._idle += 1
            self._idle_changed.notify_all()

    def wait_until_idle(self, timeout_s: float) -> bool:
        """Shutdown: waits for running jobs to finish; False when the grace ran out."""
        deadline = time.monotonic() + timeout_s
        with self._idle_changed:
            while self._idle < self.size:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle_changed.wait(min(left, 0.2))
        return True

    def close(self) -> None:
        for _ in self.slots:
            self.dispatch.put(None)

    # -- finishing ---------------------------------------------------------------------------

    def finish(self, job: ClaimedJob, outcome: Outcome) -> ClaimedJob | None:
        extra = {"job_id": job.id, "job_type": job.type, "queue": job.queue}
        try:
            if outcome.ok:
                return self._complete(job, outcome, extra)
            status = self._persist(
                lambda: self.store.fail(
                    self.worker_id, job, outcome.error, permanent=outcome.permanent
                )
            )
            event = "job.retry_scheduled" if status.value != "failed" else "job.failed"
            log.info(event, extra={**extra, "attempt": job.attempt, "error": outcome.error})
        except StaleLeaseError:
            log.warning("job.stale_lease", extra={**extra, "attempt": job.attempt})
        except JobNotFoundError:
            log.warning("job.vanished", extra=extra)
        return None

    def _complete(
        self, job: ClaimedJob, outcome: Outcome, extra: dict[str, str]
    ) -> ClaimedJob | None:
        if self.stopping.is_set():
            self._persist(lambda: self.store.complete(self.worker_id, job, outcome.result_json))
            log.info("job.completed", extra={**extra, "attempt": job.attempt})
            return None
        claimed = self._persist(
            lambda: self.store.complete_and_claim(
                self.worker_id, job, outcome.result_json, self.queues
            )
        )
        log.info("job.completed", extra={**extra, "attempt": job.attempt})
        return claimed[0] if claimed else None

    def _persist(self, call: Callable[[], _T]) -> _T:
        """Retries a finishing call through Redis outages: the scripts are safe to resend, and
        giving up would leave the job to the sweeper as if this worker had died."""
        delay = 0.05
        while True:
            try:
                return call()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as ex:
                log.warning("redis.retry", extra={"error": str(ex), "retry_in_s": delay})
                time.sleep(delay)
                delay = min(delay * 2, RETRY_CAP_S)

    # -- timeouts ----------------------------------------------------------------------------

    def _watch(self) -> None:
        worker_id_var.set(self.worker_id)
        while not self.stopping.is_set() or self.busy():
            now = time.monotonic()
            for slot in list(self.slots):
                job = slot.job
                if job is None or not slot.in_handler or now < slot.deadline:
                    continue
                if not slot.timeout_raised_at or slot.timeout_raised_at < slot.deadline:
                    slot.timeout_raised_at = now
                    _raise_in_thread(slot.thread.ident or 0, JobTimeoutError)
                    log.warning("job.timeout", extra={"job_id": job.id, "job_type": job.type})
                elif now - slot.timeout_raised_at > ABANDON_AFTER_S:
                    self._abandon(slot, job)
            time.sleep(WATCHDOG_TICK_S)

    def _abandon(self, slot: Slot, job: ClaimedJob) -> None:
        """The handler ignores the timeout (blocked in C): give up its thread, fail the attempt
        and put a fresh thread in the slot so capacity stays WORKER_COUNT."""
        slot.abandoned = True
        self.abandoned_threads += 1
        log.error(
            "job.abandoned",
            extra={"job_id": job.id, "job_type": job.type, "abandoned": self.abandoned_threads},
        )
        self.finish(job, Outcome(False, error=f"timed out after {job.timeout_ms / 1000:g}s"))
        replacement = Slot(self, slot.index)
        self.slots[slot.index] = replacement
        replacement.thread.start()
        self.slot_idle()
