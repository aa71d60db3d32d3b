"""Worker lifecycle: register, run the fetcher, slots and periodic duties, shut down cleanly.

SIGTERM/SIGINT: stop claiming, let running jobs finish within SHUTDOWN_GRACE, requeue what is
left without using an attempt, deregister. A second signal exits at once; the sweeper then
recovers the jobs this worker held.

Liveness is progress: if a thread of the worker's own dies (fetcher, slot, watchdog, a duty)
or the fetcher loop stops turning for FETCHER_STALL_S, the heartbeat stops and run() returns 1
without releasing anything, so the process exits non-zero and the sweeper recovers its jobs
(counting the attempt) rather than a zombie holding them while it looks alive.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from types import FrameType

import redis

from workstream.common.logs import worker_id_var
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.store import JobStore
from workstream.worker.background import Periodic, heartbeat_step, scheduler_step, sweeper_step
from workstream.worker.fetcher import BLOCK_S, FINAL_FLUSH_S, Fetcher
from workstream.worker.pool import Pool
from workstream.worker.registry import load_modules, registered_types

log = logging.getLogger("worker.worker")

RELEASE_RETRY_S = 10.0
# Longer than any one turn of a healthy fetcher loop: a blocking claim (BLOCK_S), a Redis call
# up to its socket timeout (10 s), a retry backoff (2 s).
FETCHER_STALL_S = 30.0


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


class Worker:
    def __init__(self, settings: Settings, store: JobStore, worker_id: str | None = None) -> None:
        self.settings = settings
        self.store = store
        self.worker_id = worker_id or new_worker_id()
        self.queues = list(settings.queues)
        self.shutdown_requested = threading.Event()
        self._stopping = threading.Event()
        self._signals = 0
        self.pool = Pool(store, self.worker_id, settings.worker_count)
        self.fetcher = Fetcher(
            store,
            self.pool,
            self.worker_id,
            self.queues,
            self._stopping,
            weights=settings.queue_weights,
        )
        beat = heartbeat_step(
            store,
            self.worker_id,
            self.queues,
            self.pool.size,
            # Slots in use: jobs claimed ahead (worker.fetcher) are held, not yet running.
            lambda: min(self.fetcher.busy, self.pool.size),
            self.broken,
        )
        self.duties = [
            Periodic("heartbeat", self.worker_id, beat),
            Periodic("scheduler", self.worker_id, scheduler_step(store)),
            Periodic("sweeper", self.worker_id, sweeper_step(store, self.worker_id)),
        ]

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("worker.exit_now", extra={"signal": signum})
            os._exit(1)
        log.info("worker.shutdown_requested", extra={"signal": signum})
        self.shutdown_requested.set()

    def run(self, *, until_idle: bool = False) -> int:
        """Runs until a shutdown is requested (or, with until_idle, until nothing is left)."""
        worker_id_var.set(self.worker_id)
        load_modules(self.settings.worker_handlers)
        self._register()
        self.fetcher.store = self._dedicated_store()
        log.info(
            "worker.started",
            extra={"queues": self.queues, "slots": self.pool.size, "handlers": registered_types()},
        )
        self.pool.start()
        self.fetcher.start()
        for duty in self.duties:
            duty.thread.start()
        while not self.shutdown_requested.wait(0.2):
            reason = self.broken()
            if reason is not None:
                log.error("worker.broken", extra={"reason": reason})
                for duty in self.duties:
                    duty.stop.set()
                return 1
            if until_idle and self._drained():
                break
        self._shutdown()
        return 0

    def broken(self) -> str | None:
        """Why this worker can no longer make progress, or None while it can."""
        fetcher = self.fetcher
        if fetcher.thread.ident is not None:  # started
            if not fetcher.thread.is_alive():
                if not fetcher.finished.is_set():
                    return "fetcher thread died"
            elif time.monotonic() - fetcher.ticked_at > FETCHER_STALL_S:
                return "fetcher stalled"
        for duty in self.duties:
            if duty.thread.ident is not None and not duty.thread.is_alive():
                if not duty.stop.is_set():
                    return f"{duty.name} thread died"
        return self.pool.broken()

    def _register(self) -> None:
        """The first heartbeat comes before any claim, so a crash is always noticed."""
        deadline = time.monotonic() + 60
        while True:
            try:
                self.duties[0].step()
                return
            except redis.exceptions.RedisError as ex:  # an outage, or BUSY/OOM/LOADING
                if time.monotonic() > deadline or self.shutdown_requested.is_set():
                    raise
                log.warning("redis.unavailable", extra={"error": str(ex)})
                time.sleep(1)

    def _dedicated_store(self) -> JobStore:
        """The fetcher is the busiest Redis user: give it a connection of its own."""
        try:
            client = connect(self.settings, dedicated=True)
            return JobStore(client, self.settings, self.store.shard)
        except redis.exceptions.RedisError:
            return self.store

    def _drained(self) -> bool:
        if self.fetcher.busy:
            return False
        try:
            infos = self.store.queue_infos(self.queues)
        except redis.exceptions.RedisError:
            return False  # ask again on the next turn
        return all(i.pending == 0 and i.scheduled == 0 and i.processing == 0 for i in infos)

    def _shutdown(self) -> None:
        grace = self.settings.shutdown_grace.total_seconds()
        self._stopping.set()
        finished = self.fetcher.idle.wait(grace + BLOCK_S)
        self.fetcher.closed.set()
        self.fetcher.finished.wait(FINAL_FLUSH_S + BLOCK_S + 1)
        self.pool.take_back()  # a job no slot has started is released below: none may start it
        requeued = self._release()
        for duty in self.duties:
            duty.stop.set()
        self.pool.close()
        log.info(
            "worker.stopped",
            extra={"finished_in_grace": finished, "requeued": requeued},
        )

    def _release(self) -> int:
        deadline = time.monotonic() + RELEASE_RETRY_S
        while True:
            try:
                return self.store.release(self.worker_id)
            except redis.exceptions.RedisError as ex:
                if time.monotonic() > deadline:
                    log.error("worker.release_failed", extra={"error": str(ex)})
                    return 0  # the sweeper recovers our list once our heartbeat goes stale
                time.sleep(0.5)
