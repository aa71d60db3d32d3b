"""Long-poll for a job to finish without starving the thread pool: at most `capacity` requests
wait at once; the rest answer the current state at once.

With the event stream on, a waiting request reads Redis only to check the job's status once
and then once a second (the safety net should the hub lose Redis): it waits in memory on the
process's event hub (api/resources/events.py) and answers as soon as the job's terminal event
arrives. Before, it polled the status every 20-250 ms: up to 4 reads a second per waiting
request and up to a quarter-second late. With EVENTS_MAX=0 it polls as before."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from workstream.api.resources.events import EventHub, wait_for_terminal
from workstream.common.store import JobStore

FIRST_INTERVAL_S = 0.02
MAX_INTERVAL_S = 0.25


class Waiter:
    def __init__(
        self,
        store: JobStore,
        capacity: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        stopping: threading.Event | None = None,
        hub_for: Callable[[str], EventHub | None] | None = None,
    ) -> None:
        self._store = store
        self._hub_for = hub_for  # a job id's shard's event hub (None: events off)
        self._slots = threading.BoundedSemaphore(max(capacity, 1))
        self._clock = clock
        self._stopping = stopping or threading.Event()

    def wait_terminal(self, job_id: str, seconds: float) -> bool:
        """Polls the status with a growing interval until it is terminal, the job is gone or
        `seconds` pass. Returns False when no waiting slot was free (nothing waited)."""
        if seconds <= 0:
            return True
        if not self._slots.acquire(blocking=False):
            return False
        try:
            deadline = self._clock() + seconds
            hub = self._hub_for(job_id) if self._hub_for is not None else None
            if hub is not None:
                wait_for_terminal(
                    hub, job_id, lambda: self._is_done(job_id), deadline,
                    self._stopping, self._clock,
                )  # fmt: skip
                return True
            interval = FIRST_INTERVAL_S
            while True:
                status = self._store.get_status(job_id)
                if status is None or status.is_terminal:
                    return True
                left = deadline - self._clock()
                if left <= 0:
                    return True
                # Event.wait doubles as a sleep that shutdown can cut short.
                if self._stopping.wait(min(interval, left)):
                    return True
                interval = min(interval * 1.5, MAX_INTERVAL_S)
        finally:
            self._slots.release()

    def _is_done(self, job_id: str) -> bool:
        status = self._store.get_status(job_id)
        return status is None or status.is_terminal
