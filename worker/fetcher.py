"""The fetcher: the worker's only Redis client for job state. It records what the slots
finished and refills them, in strict queue priority, in one Lua call per batch.

Under a backlog one call completes every finished job and claims as many new ones as slots
are free. With nothing to claim and nothing running it blocks in BLMOVE (no polling: an idle
worker makes one blocking call a second), rotating over the queues it serves, with the start
script pipelined behind it (one round trip). The fetcher is a role, not a thread (see
worker.pool): the slot thread that holds it runs the job BLMOVE brought itself.

A suspect job (recovered from a worker that died) is claimed only when no slot is busy and
then runs alone: the fetcher claims nothing more until it is recorded.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis

from workstream.common.errors import JobNotFoundError, StaleLeaseError
from workstream.common.jobs import ClaimedJob
from workstream.common.redis_conn import reopen_if_dropped
from workstream.common.states import JobStatus
from workstream.common.store import JobStore
from workstream.worker.pool import Finished, Pool

log = logging.getLogger("worker.fetcher")

BLOCK_S = 1.0  # a single queue: wake once a second to notice shutdown
MULTI_QUEUE_BLOCK_S = 0.25
BUSY_POLL_S = 0.05  # slots busy and free at once, queue empty: look again this often
BACKOFF_CAP_S = 5.0
FINAL_FLUSH_S = 5.0
BATCH_WAIT_S = 0.001
_T = TypeVar("_T")


class Fetcher:
    def __init__(
        self,
        store: JobStore,
        pool: Pool,
        worker_id: str,
        queues: list[str],
        stopping: threading.Event,
    ) -> None:
        self.store = store
        self.pool = pool
        self.worker_id = worker_id
        self.queues = queues
        self.stopping = stopping  # no more claims; keep recording outcomes
        self.closed = threading.Event()  # grace is over: record what is done and exit
        self.idle = threading.Event()
        self.idle.set()
        self.running: set[str] = set()  # ids handed to slots and not yet recorded
        self._rotation = 0
        self._resync = False
        self._backlog = False  # the last claim got all it asked for: more is waiting
        self._alone: str | None = None  # a suspect job is running: claim nothing beside it
        self._own: ClaimedJob | None = None  # BLMOVE brought it: the role holder runs it
        self.finished = threading.Event()  # closed, and every outcome recorded

    def hold(self) -> ClaimedJob | None:
        """The fetcher loop, in the slot thread that holds the role (see worker.pool)."""
        delay = 0.05
        while not (self.closed.is_set() and self.pool.done.empty()):
            try:
                reopen_if_dropped(self.store.redis)  # a cut while idle is not an error
                if self._resync:
                    self._release_orphans()
                self._step()
                delay = 0.05
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as ex:
                log.warning("redis.unavailable", extra={"error": str(ex), "retry_in_s": delay})
                self._resync = True
                self.closed.wait(delay)
                delay = min(delay * 2, BACKOFF_CAP_S)
            except Exception:
                log.exception("fetcher.error")
                self.closed.wait(1.0)
            if self._own is not None:
                job, self._own = self._own, None
                self.pool.lend()
                return job
        self.finished.set()
        return None

    def _step(self) -> None:
        done = self._collect()
        if self._alone is not None and any(job.id == self._alone for job, _ in done):
            self._alone = None
        if self.stopping.is_set() or self._alone is not None:
            free = 0
        else:
            free = self.pool.size - self.pool.busy + len(done)
        if done or free:
            claimed = self._finish(done, free)
            if claimed or done:
                return
        if self.pool.busy:
            return
        if self.stopping.is_set():
            self.closed.wait(0.1)  # nothing left to record; wait for the worker to close us
        else:
            self._block_for_one()

    def _collect(self) -> list[Finished]:
        """What the slots finished; waits for one when that is all there is to do. With a
        backlog it lets a batch build up for BATCH_WAIT_S unless half the running jobs are
        already done, since one call for many jobs costs Redis far less than one call each."""
        done: list[Finished] = []
        if self.pool.busy and not self.closed.is_set():
            all_busy = self.pool.busy >= self.pool.size or self.stopping.is_set()
            try:
                done.append(self.pool.done.get(timeout=1.0 if all_busy else BUSY_POLL_S))
            except queue.Empty:
                return done
            if self._backlog and self.pool.done.qsize() + 1 < self.pool.busy // 2:
                # One short sleep rather than a wake-up per finished job.
                time.sleep(BATCH_WAIT_S)
        while True:
            try:
                done.append(self.pool.done.get_nowait())
            except queue.Empty:
                return done

    def _finish(self, done: list[Finished], free: int) -> list[ClaimedJob]:
        """Records failures one by one and results in one call that also claims `free` jobs."""
        for job, outcome in done:
            if not outcome.ok:
                self._record_failure(job, outcome.error, permanent=outcome.permanent)
        results = [(job, outcome.result_json) for job, outcome in done if outcome.ok]
        idle = self.pool.busy == len(done)  # nothing runs once these are recorded
        if results or free:
            codes, claimed = self._persist(
                lambda: self.store.complete_many(
                    self.worker_id, results, free, self.queues, idle=idle
                )
            )
            self._backlog = free > 0 and len(claimed) == free
            info = log.isEnabledFor(logging.INFO)  # skip building fields nobody reads
            for (job, _), code in zip(results, codes, strict=True):
                if code != "ok":
                    log.warning(f"job.{code}", extra=_fields(job))
                elif info:
                    log.info("job.completed", extra=_fields(job))
        else:
            claimed = []
        for job, _ in done:
            self.running.discard(job.id)
        self.pool.busy -= len(done)
        self._dispatch(claimed)
        return claimed

    def _record_failure(self, job: ClaimedJob, error: str, *, permanent: bool) -> None:
        try:
            status = self._persist(
                lambda: self.store.fail(self.worker_id, job, error, permanent=permanent)
            )
        except (StaleLeaseError, JobNotFoundError) as ex:
            log.warning("job.stale_lease", extra={**_fields(job), "error": str(ex)})
            return
        event = "job.failed" if status is JobStatus.FAILED else "job.retry_scheduled"
        log.info(event, extra={**_fields(job), "error": error, "status": status.value})

    def _dispatch(self, jobs: list[ClaimedJob], *, own: bool = False) -> None:
        """To the slots; `own`: the one job for the role holder's thread to run itself."""
        debug = log.isEnabledFor(logging.DEBUG)
        for job in jobs:
            self.running.add(job.id)
            if job.alone:
                self._alone = job.id
                log.info("job.started_alone", extra=_fields(job))
            elif debug:
                log.debug("job.started", extra=_fields(job))
        if own:
            (self._own,) = jobs
            self.pool.busy += 1
        else:
            self.pool.submit(jobs)
        if self.pool.busy:
            self.idle.clear()
        else:
            self.idle.set()

    def _block_for_one(self) -> None:
        paused = self.store.paused_queues()
        active = [q for q in self.queues if q not in paused]
        if not active:
            self.stopping.wait(BLOCK_S)
            return
        queue_name = active[self._rotation % len(active)]
        self._rotation += 1
        block_s = BLOCK_S if len(active) == 1 else MULTI_QUEUE_BLOCK_S
        # A lost reply here raises into hold(), which then releases any orphaned id.
        job = self.store.take_and_start(self.worker_id, queue_name, block_s)
        if job is not None:
            self._dispatch([job], own=True)

    def _release_orphans(self) -> None:
        """After a lost reply: ids in our processing list that no slot runs go back."""
        released = self.store.release(self.worker_id, keep=sorted(self.running))
        self._resync = False
        if released:
            log.warning("fetcher.released_orphans", extra={"count": released})

    def _persist(self, call: Callable[[], _T]) -> _T:
        """Retries a call through Redis outages: the scripts are safe to resend. After the
        grace period it gives up; the sweeper recovers whatever this worker still holds."""
        delay = 0.05
        deadline: float | None = None
        while True:
            try:
                return call()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as ex:
                # The call may have run with its reply lost: claimed ids could be orphaned.
                self._resync = True
                if self.closed.is_set():
                    deadline = deadline or time.monotonic() + FINAL_FLUSH_S
                    if time.monotonic() > deadline:
                        raise
                log.warning("redis.retry", extra={"error": str(ex), "retry_in_s": delay})
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_CAP_S)


def _fields(job: ClaimedJob) -> dict[str, object]:
    return {"job_id": job.id, "job_type": job.type, "queue": job.queue, "attempt": job.attempt}
