"""Liveness is progress: the heartbeat is withheld, and the worker reports itself broken, when
its fetcher stalls or one of its own threads dies."""

from __future__ import annotations

import threading
import time

import redis

from workstream.common.settings import Settings
from workstream.common.store import JobStore
from workstream.worker.background import heartbeat_step
from workstream.worker.worker import FETCHER_STALL_S, Worker

SETTINGS = Settings.from_environ({"REDIS_URL": "redis://127.0.0.1:1/0"})  # never connected


class RecordingStore:
    settings = SETTINGS

    def __init__(self) -> None:
        self.beats: list[int] = []

    def heartbeat(self, worker_id: str, host: str, pid: int, queues: object, total: int,
                  busy: int, handlers: object = ()) -> int:  # fmt: skip
        self.beats.append(busy)
        return 1


def test_a_worker_reporting_a_broken_reason_is_not_heartbeated() -> None:
    store = RecordingStore()
    reason: list[str | None] = [None]
    beat = heartbeat_step(store, "w", ["default"], 4, lambda: 2, lambda: reason[0])  # type: ignore[arg-type]
    beat()
    reason[0] = "fetcher stalled"
    beat()
    assert store.beats == [2]


def _worker() -> Worker:
    return Worker(SETTINGS, JobStore(redis.Redis(port=1), SETTINGS), worker_id="w-test")


def test_a_fetcher_that_stops_turning_makes_the_worker_broken() -> None:
    worker = _worker()
    stop = threading.Event()
    worker.fetcher.thread = threading.Thread(target=stop.wait, daemon=True)
    worker.fetcher.thread.start()
    try:
        assert worker.broken() is None
        worker.fetcher.ticked_at = time.monotonic() - FETCHER_STALL_S - 1
        assert worker.broken() == "fetcher stalled"
    finally:
        stop.set()


def test_a_dead_duty_thread_makes_the_worker_broken() -> None:
    worker = _worker()
    duty = worker.duties[1]
    duty.thread = threading.Thread(target=lambda: None)
    duty.thread.start()
    duty.thread.join()
    assert worker.broken() == "scheduler thread died"
