"""The fetcher: claims jobs for idle slots, in strict queue priority.

With a backlog it claims as many ids as there are idle slots in one Lua call. With nothing to
claim it blocks in BLMOVE (no polling: an idle worker costs one blocking call per second),
rotating over the queues it serves so that every queue wakes it.
"""

from __future__ import annotations

import logging
import threading

import redis

from common.store import JobStore
from worker.pool import Pool

log = logging.getLogger("worker.fetcher")

BLOCK_S = 1.0  # single queue: wake once a second to notice shutdown
MULTI_QUEUE_BLOCK_S = 0.25
BACKOFF_CAP_S = 5.0


class Fetcher:
    def __init__(
        self, store: JobStore, pool: Pool, worker_id: str, queues: list[str], stop: threading.Event
    ) -> None:
        self.store = store
        self.pool = pool
        self.worker_id = worker_id
        self.queues = queues
        self.stop = stop
        self._rotation = 0
        self.thread = threading.Thread(target=self._loop, name="fetcher", daemon=True)

    def _loop(self) -> None:
        delay = 0.05
        while not self.stop.is_set():
            try:
                self._step()
                delay = 0.05
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as ex:
                log.warning("redis.unavailable", extra={"error": str(ex), "retry_in_s": delay})
                self.stop.wait(delay)
                delay = min(delay * 2, BACKOFF_CAP_S)
            except Exception:
                log.exception("fetcher.error")
                self.stop.wait(1.0)

    def _step(self) -> None:
        idle = self.pool.wait_for_idle_slot(timeout_s=1.0)
        if idle == 0 or self.stop.is_set():
            return
        jobs = self.store.claim(self.worker_id, idle, self.queues)
        if jobs:
            self.pool.submit(jobs)
            return
        self._block_for_one()

    def _block_for_one(self) -> None:
        paused = self.store.paused_queues()
        active = [q for q in self.queues if q not in paused]
        if not active:
            self.stop.wait(BLOCK_S)
            return
        queue = active[self._rotation % len(active)]
        self._rotation += 1
        block_s = BLOCK_S if len(active) == 1 else MULTI_QUEUE_BLOCK_S
        job_id = self.store.take_blocking(self.worker_id, queue, block_s)
        if job_id is None:
            return
        job = self.store.start(self.worker_id, job_id, queue)
        if job is not None:
            self.pool.submit([job])
