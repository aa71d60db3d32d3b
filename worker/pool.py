"""The slot pool: WORKER_COUNT threads that run handlers, and a watchdog that enforces timeouts.

One hand-off each way: the fetcher puts jobs on `jobs`, any free slot takes one, runs it and
puts (job, outcome) on `done` for the fetcher to record. Slots never record job state. A job
no slot has taken yet can be taken back by the fetcher (take_back: it hands jobs claimed ahead
back to Redis); a SimpleQueue get is atomic, so each job is taken by one slot or taken back.

Timeouts: the watchdog raises JobTimeoutError inside a slot's thread (PyThreadState_SetAsyncExc)
only while it holds that slot's lock and sees the slot still in its handler. The slot takes the
same lock to leave the handler and clears any exception still pending there, so a timeout is
either delivered in the handler or caught on the slot's way out of it, never later (in the
hand-off, or in the fetcher). The same lock decides who reports an attempt: the slot, or the
watchdog when it abandons a handler that ignored the timeout for ABANDON_AFTER_S (C code that
released the GIL) and puts a fresh thread in the slot. Each outcome is handed over exactly once.

C code that holds the GIL (a catastrophic regex) cannot be interrupted at all: the whole
process stops, heartbeat included, until another worker's sweeper finds the heartbeat older
than WORKER_TTL and recovers the jobs. If a slot thread or the watchdog itself dies, `broken()`
says so and the worker exits non-zero rather than run on with less than it reports.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
import time
from typing import Any

import redis

from workstream.common.jobs import ClaimedJob
from workstream.common.logs import worker_id_var
from workstream.common.redis_conn import connect, reopen_if_dropped
from workstream.common.store import JobStore
from workstream.worker.execution import Outcome, finish, prepare, timed_out
from workstream.worker.registry import JobTimeoutError

log = logging.getLogger("worker.pool")

# The watchdog ticks while jobs run, and for WATCHDOG_IDLE_AFTER_S after (a steady trickle of
# jobs never has to wake it); then it sleeps until a job starts. Ticking all the time cost an
# idle worker 0.3-0.75 % of a CPU.
WATCHDOG_TICK_S = 0.02
WATCHDOG_IDLE_AFTER_S = 1.0
WATCHDOG_IDLE_S = 5.0  # a backstop only: starting a job wakes it
ABANDON_AFTER_S = 2.0  # after the timeout was raised in the thread without effect
RECHECK_IDLE_S = 1.0  # a handler connection idle this long is checked before the next job

Finished = tuple[ClaimedJob, Outcome]


def _raise_in_thread(thread_id: int, exc: type[BaseException] | None) -> None:
    """Schedules `exc` in another thread (None clears a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None
    )


class Slot:
    def __init__(self, pool: Pool, index: int) -> None:
        self.pool = pool
        self.index = index
        # Guards the fields below between this slot's thread and the watchdog.
        self.lock = threading.Lock()
        self.job: ClaimedJob | None = None
        self.deadline = 0.0
        self.in_handler = False
        self.timeout_raised_at: float | None = None
        self.abandoned = False  # the watchdog reported the job: this thread must not
        self._redis: redis.Redis | None = None
        self._used_at = 0.0
        self.thread = threading.Thread(target=self._main, name=f"slot-{index}", daemon=True)

    def _main(self) -> None:
        worker_id_var.set(self.pool.worker_id)
        try:
            while (job := self.pool.jobs.get()) is not None:
                if not self._run(job):
                    return  # abandoned: a fresh thread serves this slot now
        except BaseException:  # a bug here, not in a handler: the worker must not limp on
            log.exception("slot.crashed", extra={"slot": self.index})
            self.pool.crashed.set()

    def _run(self, job: ClaimedJob) -> bool:
        """Runs one attempt and hands its outcome over; False when the watchdog did instead."""
        call = prepare(job, self.pool.worker_id, self._client())
        if isinstance(call, Outcome):
            self.pool.done.put((job, call))
            return True
        result: Any = None
        error: BaseException | None = None
        with self.lock:
            self.job = job
            self.deadline = time.monotonic() + job.timeout_ms / 1000
            self.timeout_raised_at = None
            self.in_handler = True
        self.pool.job_started()
        called = False
        while True:
            try:
                if not called:
                    called = True
                    try:
                        result = call.fn(call.payload, call.ctx)
                    except BaseException as ex:  # SystemExit too: the job's, not ours
                        error = ex
                with self.lock:
                    self.in_handler = False
                    if self.timeout_raised_at is not None:  # it may still be pending: drop it
                        _raise_in_thread(threading.get_ident(), None)
                    abandoned, self.job = self.abandoned, None
                break
            except JobTimeoutError as ex:  # raised under the lock just as the handler left
                error = ex
        if abandoned:
            return False
        self.pool.done.put((job, finish(job, result, error)))
        return True

    def _client(self) -> redis.Redis:
        """The handler's own connection (ctx.redis): dedicated to this slot's thread. One the
        network dropped since the last job is reopened, so the handler's first command does
        not fail for a cut that happened while it was idle."""
        now = time.monotonic()
        if self._redis is None:
            try:
                self._redis = connect(self.pool.store.settings, dedicated=True)
            except redis.exceptions.RedisError:
                return self.pool.store.redis  # Redis is away: the shared pool reconnects
        elif now - self._used_at > RECHECK_IDLE_S:  # a busy slot's connection was just used
            reopen_if_dropped(self._redis)
        self._used_at = now
        return self._redis


class Pool:
    def __init__(self, store: JobStore, worker_id: str, size: int) -> None:
        self.store = store
        self.worker_id = worker_id
        self.size = size
        self.jobs: queue.SimpleQueue[ClaimedJob | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[Finished] = queue.SimpleQueue()
        self.slots = [Slot(self, i) for i in range(size)]
        self.abandoned_threads = 0
        self.crashed = threading.Event()  # a slot thread died of a bug
        self.watchdog_ticks = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._active_at = time.monotonic()
        self._watchdog = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    def start(self) -> None:
        for slot in self.slots:
            slot.thread.start()
        self._watchdog.start()

    def submit(self, jobs: list[ClaimedJob]) -> None:
        for job in jobs:
            self.jobs.put(job)

    def take_back(self) -> list[ClaimedJob]:
        """Removes the jobs handed over that no slot has taken yet (the fetcher's only other use
        of `jobs`): each job is taken either by one slot or here, never both."""
        jobs: list[ClaimedJob] = []
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return jobs
            if job is None:  # close() has begun: leave the slots their stop signal
                self.jobs.put(None)
                return jobs
            jobs.append(job)

    def job_started(self) -> None:
        self._active_at = time.monotonic()
        if not self._wake.is_set():  # set already while jobs keep coming
            self._wake.set()

    def broken(self) -> str | None:
        """Why this pool can no longer run what it is given, or None."""
        if self.crashed.is_set():
            return "slot thread crashed"
        if self._watchdog.ident is not None and not self._stop.is_set():
            if not self._watchdog.is_alive():
                return "watchdog died"
        return None

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        for _ in self.slots:
            self.jobs.put(None)

    def _watch(self) -> None:
        worker_id_var.set(self.worker_id)
        try:
            while not self._stop.is_set():
                self.tick(time.monotonic())
        except BaseException:
            log.exception("watchdog.crashed")
            raise

    def tick(self, now: float) -> None:
        """One watchdog round: enforce deadlines, then wait for the next round."""
        self.watchdog_ticks += 1
        running = False
        for slot in list(self.slots):
            running = self.enforce(slot, now) or running
        if running or now - self._active_at < WATCHDOG_IDLE_AFTER_S:
            self._stop.wait(WATCHDOG_TICK_S)
            return
        # Cleared before looking again, so a job that starts meanwhile still wakes it.
        self._wake.clear()
        if not any(slot.job is not None for slot in self.slots):
            self._wake.wait(WATCHDOG_IDLE_S)

    def enforce(self, slot: Slot, now: float) -> bool:
        """The slot's deadline: raise the timeout once, abandon the handler if it ignores it.
        True when the slot runs a job."""
        with slot.lock:
            job = slot.job
            if job is None or not slot.in_handler:
                return job is not None
            if now < slot.deadline:
                return True
            if slot.timeout_raised_at is None:
                slot.timeout_raised_at = now
                _raise_in_thread(slot.thread.ident or 0, JobTimeoutError)
                log.warning("job.timeout", extra={"job_id": job.id, "job_type": job.type})
                return True
            if now - slot.timeout_raised_at < ABANDON_AFTER_S:
                return True
            slot.abandoned = True  # from here the slot's thread will not report it
        self._abandon(slot, job)
        return False

    def _abandon(self, slot: Slot, job: ClaimedJob) -> None:
        """The handler ignores the timeout (blocked in C): report the attempt as timed out
        and put a fresh thread in the slot so capacity stays WORKER_COUNT."""
        self.abandoned_threads += 1
        log.error(
            "job.abandoned",
            extra={"job_id": job.id, "job_type": job.type, "abandoned": self.abandoned_threads},
        )
        replacement = Slot(self, slot.index)
        self.slots[slot.index] = replacement
        replacement.thread.start()
        self.done.put((job, timed_out(job)))
