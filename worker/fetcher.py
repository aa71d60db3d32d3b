"""The fetcher: one dedicated thread, the worker's only client for job state. It records what
the slots finished and refills them, in one Lua call per batch: from the queues in strict
QUEUES order, or, with weights, in an order drawn per claim (claim_order); within a queue, jobs
of a higher priority first (the claim takes the queue's priority ZSET before its list).

Under a backlog one call completes every finished job and claims as many new ones as slots
are free, and while the jobs are short one more per slot (PREFETCH_PER_SLOT): a slot that
finishes takes its next job at once instead of waiting out the fetcher's round trip, and each
call records and claims about twice as many jobs, which is what Redis and the fetcher pay for
per call. A job claimed ahead that no slot takes within PREFETCH_HOLD_S (long jobs hold every
slot), and any at shutdown, goes back to its queue without using an attempt (Pool.take_back,
then the release script). With nothing to claim and nothing running it blocks in BLMOVE (no
polling: an idle worker makes one blocking call a second), rotating over the queues it serves,
with the start script pipelined behind it (one round trip). BLMOVE reads only the list: a job
of priority 1-9 pushes a WAKE onto an empty list so that a blocked worker wakes, and the start
script starts the best job of the priority ZSET instead of the id BLMOVE moved whenever one
waits (that id goes back to the front of the list), so no job of the list ever goes first.

Outcomes are kept until Redis has them. Any Redis error (a lost connection, or a reply such as
BUSY, OOM, LOADING, READONLY) leaves them in `unrecorded` and the call is resent after a capped
backoff: recording is fenced and idempotent, so a resend is safe. Slots keep handing outcomes
over meanwhile; nothing is dropped and no slot is lost. `ticked_at` shows the loop turning, which
the heartbeat requires (see worker.worker).

A suspect job (recovered from a worker that died) is claimed only when no slot is busy and
then runs alone: the fetcher claims nothing more until it is recorded.

A queue's limits (common/limits.py) are judged by the claim scripts; a claim they held back
says how long until one lifts, and the fetcher claims nothing until then (at most
LIMITED_SLEEP_CAP_S, or MULTI_QUEUE_BLOCK_S for a worker of several queues, so other queues and
shutdown are noticed), still recording outcomes, instead of asking again at once or blocking in
BLMOVE on a queue it may not take from.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Sequence

import redis

from workstream.common.errors import JobNotFoundError, StaleLeaseError
from workstream.common.jobs import ClaimedJob
from workstream.common.logs import worker_id_var
from workstream.common.redis_conn import reopen_if_dropped, unavailable_reason
from workstream.common.states import JobStatus
from workstream.common.store import Claimed, JobStore
from workstream.worker.execution import Outcome
from workstream.worker.pool import Finished, Pool

log = logging.getLogger("worker.fetcher")

BLOCK_S = 1.0  # a single queue: wake once a second to notice shutdown
MULTI_QUEUE_BLOCK_S = 0.25
BUSY_POLL_S = 0.05  # slots busy and free at once, queue empty: look again this often
RETRY_FIRST_S = 0.05
BACKOFF_CAP_S = 2.0
FINAL_FLUSH_S = 5.0  # after close: how long unrecorded outcomes are retried before giving up
BATCH_WAIT_S = 0.001
# Jobs claimed ahead per slot, only while a backlog lasts and the slots finish a job every
# SHORT_JOB_S or faster on average (long jobs gain nothing from it). Jobs ahead count as started
# in Redis from the claim (started_at, the reclaim deadline), so they are bounded: one per slot,
# and at most about PREFETCH_HOLD_S of waiting, far inside the reclaim margin (WORKER_TTL). A
# SIGKILL makes them suspects like the running jobs (attempt counted, run alone): a crash under
# a backlog of short jobs costs up to twice WORKER_COUNT jobs an attempt instead of WORKER_COUNT.
PREFETCH_PER_SLOT = 1
SHORT_JOB_S = 0.1
PREFETCH_HOLD_S = 0.5
LIMITED_SLEEP_CAP_S = 1.0


class Fetcher:
    def __init__(
        self,
        store: JobStore,
        pool: Pool,
        worker_id: str,
        queues: list[str],
        stopping: threading.Event,
        weights: Sequence[int] = (),
    ) -> None:
        self.store = store
        self.pool = pool
        self.worker_id = worker_id
        self.queues = queues
        # QUEUES with weights: each claim orders the queues by weighted random choice
        # (claim_order), so a busy queue never starves the others; none: strict order.
        self.weights = tuple(weights)
        self._random = random.Random()
        self.stopping = stopping  # no more claims; keep recording outcomes
        self.closed = threading.Event()  # grace is over: record what is done and exit
        self.idle = threading.Event()  # nothing in the slots, nothing unrecorded
        self.idle.set()
        self.finished = threading.Event()  # closed, and the loop has ended
        self.in_slots = 0  # handed to the slots (running or waiting), outcome not back yet
        self.unrecorded: list[Finished] = []  # back from the slots, not in Redis yet
        self.running: set[str] = set()  # ids in our processing list that we know of
        self.ticked_at = time.monotonic()
        self.thread = threading.Thread(target=self._main, name="fetcher", daemon=True)
        self._rotation = 0
        self._resync = False
        self._backlog = False  # the last claim got all it asked for: more is waiting
        self._alone: str | None = None  # a suspect job is running: claim nothing beside it
        self._handed = 0  # jobs handed to the pool in all, less those taken back
        # (value of _handed after a hand-over, when): finds how long the oldest waiting job waits
        self._handovers: deque[tuple[int, float]] = deque()
        self._short = False  # the slots finish jobs fast enough to claim ahead
        self._window_at = time.monotonic()  # since when _window_done counts outcomes
        self._window_done = 0
        self._limited_until = 0.0  # monotonic: a queue's limits hold jobs back until then

    @property
    def busy(self) -> int:
        """Jobs taken and not yet recorded."""
        return self.in_slots + len(self.unrecorded)

    def start(self) -> None:
        self.thread.start()

    def _main(self) -> None:
        worker_id_var.set(self.worker_id)
        try:
            self._loop()
        except BaseException:  # a bug, not Redis: the worker sees the thread gone and exits
            log.exception("fetcher.crashed")
            return
        self.finished.set()

    def _loop(self) -> None:
        delay = RETRY_FIRST_S
        flush_until: float | None = None
        while True:
            self.ticked_at = now = time.monotonic()
            self._collect(wait=False)  # even while Redis refuses us: busy stays exact
            if self.closed.is_set():
                if not self.unrecorded:
                    return  # what still runs past the grace is released by the worker
                flush_until = flush_until or now + FINAL_FLUSH_S
                if now > flush_until:
                    log.error("fetcher.unrecorded_at_exit", extra={"count": len(self.unrecorded)})
                    return
            try:
                reopen_if_dropped(self.store.redis)  # a cut while idle is not an error
                if self._resync:
                    self._release_orphans()
                self._step()
                delay = RETRY_FIRST_S
            except redis.exceptions.RedisError as ex:
                # The call may have run with its reply lost: claimed ids could be orphaned.
                self._resync = True
                log.warning(
                    "fetcher.redis_error",
                    extra={
                        "error": str(ex)[:200],
                        "reason": unavailable_reason(ex),
                        "unrecorded": len(self.unrecorded),
                        "retry_in_s": delay,
                    },
                )
                self.closed.wait(delay)
                delay = min(delay * 2, BACKOFF_CAP_S)
            self._update_idle()

    def _step(self) -> None:
        self._collect(wait=not self.unrecorded)
        if self.pool.jobs.qsize() and (self.stopping.is_set() or self._waited() > PREFETCH_HOLD_S):
            self._hand_back_waiting()
        if self.stopping.is_set() or self._alone is not None or self._limited():
            free = 0
        else:
            ahead = self.pool.size * PREFETCH_PER_SLOT if self._backlog and self._fast() else 0
            free = max(0, self.pool.size + ahead - self.in_slots)
        if self.unrecorded or free:
            had_outcomes = bool(self.unrecorded)
            claimed = self._record(free)
            if claimed or had_outcomes:
                return
        if self.in_slots:
            return
        if self.stopping.is_set():
            self.closed.wait(0.1)  # nothing left to record; wait for the worker to close us
        elif self._limited():
            self.stopping.wait(self._limited_until - time.monotonic())
        else:
            self._block_for_one()

    def _collect(self, *, wait: bool) -> None:
        """Takes what the slots finished; with `wait`, waits for one when slots are busy. With a
        backlog it lets a batch build up for BATCH_WAIT_S unless half the running jobs are
        already done, since one call for many jobs costs Redis far less than one call each."""
        done = self.pool.done
        if wait and self.in_slots and not self.closed.is_set():
            all_busy = self.in_slots >= self.pool.size or self.stopping.is_set()
            timeout = 1.0 if all_busy else BUSY_POLL_S
            if self._limited():  # wake when the limit lifts, to claim on time
                timeout = max(0.0, min(timeout, self._limited_until - time.monotonic()))
            try:
                self._take(done.get(timeout=timeout))
            except queue.Empty:
                return
            if self._backlog and done.qsize() + 1 < self.in_slots // 2:
                time.sleep(BATCH_WAIT_S)  # one short sleep rather than a wake-up per job
        while True:
            try:
                self._take(done.get_nowait())
            except queue.Empty:
                return

    def _take(self, finished: Finished) -> None:
        self.unrecorded.append(finished)  # before the decrement: `busy` never dips meanwhile
        self.in_slots -= 1
        self._window_done += 1
        if finished[0].id == self._alone:
            self._alone = None

    def _record(self, free: int) -> Claimed:
        """Records failures one by one, then results in one call that also claims `free` jobs.
        A Redis error leaves whatever was not recorded in `unrecorded` for the next try."""
        successes: list[Finished] = []
        for index, (job, outcome) in enumerate(self.unrecorded):
            if outcome.ok:
                successes.append((job, outcome))
                continue
            try:
                self._record_failure(job, outcome)
            except BaseException:
                self.unrecorded = successes + self.unrecorded[index:]
                raise
            self.running.discard(job.id)
        self.unrecorded = successes
        results = [(job, outcome.result_json) for job, outcome in self.unrecorded]
        if not (results or free):
            return Claimed()
        idle = self.in_slots == 0  # nothing runs once these are recorded
        queues = claim_order(self.queues, self.weights, self._random) if free else self.queues
        codes, claimed = self.store.complete_many(self.worker_id, results, free, queues, idle=idle)
        self.unrecorded.clear()
        if free:  # a call that claims nothing says nothing about the queues
            self._backlog = len(claimed) == free
            if claimed.wait_ms and len(claimed) < free:
                self._limit_for(claimed.wait_ms)
        info = log.isEnabledFor(logging.INFO)  # skip building fields nobody reads
        for (job, _), code in zip(results, codes, strict=True):
            self.running.discard(job.id)
            if code == "cancelled":  # asked to stop while it ran: Redis ended it cancelled
                log.info("job.cancelled", extra=_fields(job))
            elif code != "ok":
                log.warning(f"job.{code}", extra=_fields(job))
            elif info:
                log.info("job.completed", extra=_fields(job))
        self._dispatch(claimed)
        return claimed

    def _record_failure(self, job: ClaimedJob, outcome: Outcome) -> None:
        try:
            status = self.store.fail(
                self.worker_id,
                job,
                outcome.error,
                permanent=outcome.permanent,
                traceback=outcome.traceback,
                outcome=outcome.kind,
                retry_delay_ms=outcome.retry_delay_ms,
            )
        except (StaleLeaseError, JobNotFoundError) as ex:
            log.warning("job.stale_lease", extra={**_fields(job), "error": str(ex)})
            return
        event = "job.failed" if status is JobStatus.FAILED else "job.retry_scheduled"
        log.info(event, extra={**_fields(job), "error": outcome.error, "status": status.value})

    def _dispatch(self, jobs: list[ClaimedJob]) -> None:
        if not jobs:
            return
        debug = log.isEnabledFor(logging.DEBUG)
        for job in jobs:
            self.running.add(job.id)
            if job.alone:
                self._alone = job.id
                log.info("job.started_alone", extra=_fields(job))
            elif debug:
                log.debug("job.started", extra=_fields(job))
        self.in_slots += len(jobs)
        self._handed += len(jobs)
        self._handovers.append((self._handed, time.monotonic()))
        self.idle.clear()
        self.pool.submit(jobs)

    def _fast(self) -> bool:
        """Whether the slots finished a job every SHORT_JOB_S or faster on average over the
        last window (at least SHORT_JOB_S long)."""
        now = time.monotonic()
        elapsed = now - self._window_at
        if elapsed >= SHORT_JOB_S:
            self._short = self._window_done * SHORT_JOB_S >= self.pool.size * elapsed
            self._window_at, self._window_done = now, 0
        return self._short

    def _waited(self) -> float:
        """How long the oldest job that no slot has taken yet has waited (0.0: none waits)."""
        taken = self._handed - self.pool.jobs.qsize()  # a slot taking one meanwhile: older
        handovers = self._handovers
        while handovers and handovers[0][0] <= taken:
            handovers.popleft()  # every job of that hand-over is taken
        return time.monotonic() - handovers[0][1] if handovers else 0.0

    def _hand_back_waiting(self) -> None:
        """Jobs no slot has taken go back to their queue, attempt unused: at shutdown, or when
        long jobs hold every slot, another worker can run them now."""
        jobs = self.pool.take_back()
        if not jobs:
            return
        self.in_slots -= len(jobs)
        self._handed -= len(jobs)
        self._handovers.clear()
        self._short = False  # the slots are held up: claim no more ahead for a window
        self._window_at, self._window_done = time.monotonic(), 0
        for job in jobs:
            self.running.discard(job.id)
            if job.id == self._alone:
                self._alone = None
        self._resync = True  # should the release fail, the loop's next turn releases them
        released = self.store.release(self.worker_id, keep=sorted(self.running))
        self._resync = False
        log.info("fetcher.handed_back", extra={"count": len(jobs), "released": released})

    def _update_idle(self) -> None:
        if self.in_slots or self.unrecorded:
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
        # A lost reply here raises into the loop, which then releases any orphaned id.
        claimed = self.store.take_and_start_limited(self.worker_id, queue_name, block_s)
        if claimed.wait_ms:
            self._limit_for(claimed.wait_ms)
        self._dispatch(claimed)

    def _limit_for(self, wait_ms: int) -> None:
        # Serving several queues, look again as often as BLMOVE's rotation would: new work in
        # another queue is not held up by one queue's limit for long.
        cap = LIMITED_SLEEP_CAP_S if len(self.queues) == 1 else MULTI_QUEUE_BLOCK_S
        self._limited_until = time.monotonic() + min(wait_ms / 1000, cap)

    def _limited(self) -> bool:
        return time.monotonic() < self._limited_until

    def _release_orphans(self) -> None:
        """After a Redis error: ids in our processing list that no slot runs go back."""
        released = self.store.release(self.worker_id, keep=sorted(self.running))
        self._resync = False
        if released:
            log.warning("fetcher.released_orphans", extra={"count": released})


def claim_order(queues: list[str], weights: Sequence[int], rng: random.Random) -> list[str]:
    """The queues in the order one claim tries them: as configured (strict) without weights;
    with them, by weighted random choice without replacement, as Sidekiq's weighted mode does:
    each queue comes first with probability weight / total, so each gets about its share of
    the claims while all have work, and a low weight is slower, never starved. Each queue's
    key is u ** (1 / weight) for a uniform u (Efraimidis and Spirakis), largest first."""
    if not weights or len(queues) < 2:
        return queues
    keyed = sorted(
        (
            (rng.random() ** (1.0 / weight), name)
            for name, weight in zip(queues, weights, strict=True)
        ),
        reverse=True,
    )
    return [name for _, name in keyed]


def _fields(job: ClaimedJob) -> dict[str, object]:
    return {"job_id": job.id, "job_type": job.type, "queue": job.queue, "attempt": job.attempt}
