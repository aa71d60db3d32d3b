"""The slot pool: WORKER_COUNT + 1 threads that run handlers, one of them holding the fetcher
role at any time (leader/follower).

Slots never record job state themselves (the handler may use Redis): the fetcher hands them
jobs and records their outcomes in batches. The role is a token on the dispatch queue. An idle
worker's fetcher runs the job BLMOVE brought in its own thread, holding on to the role, and
goes back to fetching when it is done: no thread hand-off, which costs ~0.1 ms of latency
at p50 here (a fifth of it) and more at p99. A job that runs longer than ROLE_LEND_S has the
role passed on by the watchdog, so a slow job never holds up the next claims for long.

Timeouts are enforced by the watchdog too: it raises JobTimeoutError inside the slot's thread;
a handler stuck in C code that ignores it is abandoned (its outcome is reported as a timeout,
its lease becomes void) and a fresh thread takes the slot over so capacity stays WORKER_COUNT.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
import time
from typing import Protocol, cast

import redis

from workstream.common.jobs import ClaimedJob
from workstream.common.logs import worker_id_var
from workstream.common.redis_conn import connect, reopen_if_dropped
from workstream.common.store import JobStore
from workstream.worker.execution import Outcome, run_job
from workstream.worker.registry import JobTimeoutError

log = logging.getLogger("worker.pool")

# The watchdog ticks while jobs run or the role is lent, and for WATCHDOG_IDLE_AFTER_S after
# (a steady trickle of jobs never has to wake it); then it sleeps until a job starts. Ticking
# all the time cost an idle worker 0.3-0.75 % of a CPU.
WATCHDOG_TICK_S = 0.02
WATCHDOG_IDLE_AFTER_S = 1.0
WATCHDOG_IDLE_S = 5.0  # a backstop only: starting a job or lending the role wakes it
ROLE_LEND_S = 0.02
ABANDON_AFTER_S = 2.0  # after the timeout was raised in the thread without effect

Finished = tuple[ClaimedJob, Outcome]


class FetcherRole(Protocol):
    def hold(self) -> ClaimedJob | None:
        """Runs the fetcher in the calling thread until it has a job for this thread to run
        (returned; the role is lent to it) or the worker closes (None)."""


# On the dispatch queue: whoever takes it holds the fetcher role.
_ROLE = object()


def _raise_in_thread(thread_id: int, exc: type[BaseException] | None) -> None:
    """Schedules `exc` in another thread (None clears a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None
    )


def _timed_out(job: ClaimedJob) -> Outcome:
    return Outcome(False, error=f"timed out after {job.timeout_ms / 1000:g}s", timed_out=True)


class Slot:
    def __init__(self, pool: Pool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.job: ClaimedJob | None = None
        self.deadline = 0.0
        self.in_handler = False
        self.timeout_raised_at = 0.0
        self.abandoned = False
        self._redis: redis.Redis | None = None
        self.thread = threading.Thread(target=self._loop, name=f"slot-{index}", daemon=True)

    def _loop(self) -> None:
        worker_id_var.set(self.pool.worker_id)
        fetcher = self.pool.fetcher
        assert fetcher is not None
        holding = False  # the fetcher role: held, or lent to the job this thread runs
        while True:
            item: ClaimedJob | object | None
            if holding:
                item = fetcher.hold()
                if item is None:  # the worker is closing: wait for the pool's own None
                    holding = False
                    continue
            else:
                item = self.pool.dispatch.get()
                if item is None:
                    return
                if item is _ROLE:
                    holding = True
                    continue
            job = cast(ClaimedJob, item)
            outcome = self._run(job)
            if self.abandoned:
                return  # the watchdog reported this job already; this thread retires
            self.pool.done.put((job, outcome))
            if holding:
                holding = self.pool.take_back()

    def _run(self, job: ClaimedJob) -> Outcome:
        self.job = job
        started = time.monotonic()
        self.deadline = started + job.timeout_ms / 1000
        self.in_handler = True
        self.pool.wake_watchdog(started)
        try:
            outcome = run_job(job, self.pool.worker_id, self._client())
        except JobTimeoutError:  # raised just after the handler returned
            outcome = _timed_out(job)
        finally:
            self.in_handler = False
        # The watchdog may have fired between the handler's return and the flag above.
        _raise_in_thread(threading.get_ident(), None)
        self.job = None
        return outcome

    def _client(self) -> redis.Redis:
        """The handler's own connection (ctx.redis): dedicated to this slot's thread. One the
        network dropped since the last job is reopened, so the handler's first command does
        not fail for a cut that happened while it was idle."""
        if self._redis is None:
            try:
                self._redis = connect(self.pool.store.settings, dedicated=True)
            except redis.exceptions.RedisError:
                return self.pool.store.redis  # Redis is away: the shared pool reconnects
        else:
            reopen_if_dropped(self._redis)
        return self._redis


class Pool:
    def __init__(self, store: JobStore, worker_id: str, size: int) -> None:
        self.store = store
        self.worker_id = worker_id
        self.size = size
        self.dispatch: queue.SimpleQueue[ClaimedJob | object | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[Finished] = queue.SimpleQueue()
        self.busy = 0  # jobs handed out and not yet reported back; owned by the fetcher
        self.fetcher: FetcherRole | None = None
        self._role_lock = threading.Lock()
        self._lent_since: float | None = None
        # One thread more than jobs may run: while `size` jobs run, the last holds the role.
        self.slots = [Slot(self, i) for i in range(size + 1)]
        self.abandoned_threads = 0
        self._stop = threading.Event()
        self._watch_needed = threading.Event()
        self._active_at = time.monotonic()
        self.watchdog_ticks = 0
        self._watchdog = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    def start(self, fetcher: FetcherRole) -> None:
        self.fetcher = fetcher
        for slot in self.slots:
            slot.thread.start()
        self._watchdog.start()
        self.pass_role()

    def submit(self, jobs: list[ClaimedJob]) -> None:
        self.busy += len(jobs)
        for job in jobs:
            self.dispatch.put(job)

    def pass_role(self) -> None:
        """The fetcher role to the next free thread."""
        self.dispatch.put(_ROLE)

    def lend(self) -> None:
        """The role holder runs a job itself: the watchdog passes the role on after
        ROLE_LEND_S unless take_back comes first."""
        with self._role_lock:
            self._lent_since = now = time.monotonic()
        self.wake_watchdog(now)

    def wake_watchdog(self, now: float) -> None:
        """A job starts or the role is lent at `now` (monotonic)."""
        self._active_at = now
        if not self._watch_needed.is_set():  # set already while jobs keep coming
            self._watch_needed.set()

    def take_back(self) -> bool:
        """After the lent job: True when the role is still this thread's."""
        with self._role_lock:
            lent, self._lent_since = self._lent_since is not None, None
        return lent

    def _pass_if_lent_too_long(self, now: float) -> None:
        with self._role_lock:
            if self._lent_since is None or now - self._lent_since < ROLE_LEND_S:
                return
            self._lent_since = None
        self.pass_role()

    def close(self) -> None:
        self._stop.set()
        self._watch_needed.set()
        for _ in self.slots:
            self.dispatch.put(None)

    def _watch(self) -> None:
        worker_id_var.set(self.worker_id)
        while not self._stop.is_set():
            self.watchdog_ticks += 1
            now = time.monotonic()
            self._pass_if_lent_too_long(now)
            for slot in list(self.slots):
                job = slot.job
                if job is None or not slot.in_handler or now < slot.deadline:
                    continue
                if slot.timeout_raised_at < slot.deadline:
                    slot.timeout_raised_at = now
                    _raise_in_thread(slot.thread.ident or 0, JobTimeoutError)
                    log.warning("job.timeout", extra={"job_id": job.id, "job_type": job.type})
                elif now - slot.timeout_raised_at > ABANDON_AFTER_S:
                    self._abandon(slot, job)
            if self._watching() or now - self._active_at < WATCHDOG_IDLE_AFTER_S:
                self._stop.wait(WATCHDOG_TICK_S)
                continue
            # Cleared before looking again, so a job that starts meanwhile still wakes it.
            self._watch_needed.clear()
            if not self._watching():
                self._watch_needed.wait(WATCHDOG_IDLE_S)

    def _watching(self) -> bool:
        """A job runs (its timeout to enforce) or the role is lent (to pass on)."""
        return self._lent_since is not None or any(slot.job is not None for slot in self.slots)

    def _abandon(self, slot: Slot, job: ClaimedJob) -> None:
        """The handler ignores the timeout (blocked in C): give up its thread, report the
        attempt as timed out, and put a fresh thread in the slot."""
        slot.abandoned = True
        self.abandoned_threads += 1
        log.error(
            "job.abandoned",
            extra={"job_id": job.id, "job_type": job.type, "abandoned": self.abandoned_threads},
        )
        replacement = Slot(self, slot.index)
        self.slots[slot.index] = replacement
        replacement.thread.start()
        self.done.put((job, _timed_out(job)))
