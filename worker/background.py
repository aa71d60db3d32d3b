"""Periodic duties of every worker process: heartbeat, scheduler and (under a lock) sweeper."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import redis

from workstream.common.logs import worker_id_var
from workstream.common.outbox import open_outbox
from workstream.common.schedules import ScheduleStore
from workstream.common.store import JobStore
from workstream.worker.registry import registered_types

log = logging.getLogger("worker.background")

SCHEDULER_MAX_SLEEP_S = 1.0
SCHEDULER_MIN_SLEEP_S = 0.01


class Periodic:
    """A daemon thread that runs `step` until stopped; `step` returns seconds to sleep.
    Redis outages are logged and retried with capped backoff, never fatal."""

    def __init__(self, name: str, worker_id: str, step: Callable[[], float]) -> None:
        self.name = name
        self.worker_id = worker_id
        self.step = step
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _loop(self) -> None:
        worker_id_var.set(self.worker_id)
        failures = 0
        while not self.stop.is_set():
            try:
                pause = self.step()
                failures = 0
            except redis.exceptions.RedisError as ex:  # an outage or a BUSY/OOM reply
                failures += 1
                pause = min(0.1 * 2**failures, 5.0)
                log.warning(f"{self.name}.redis_unavailable", extra={"error": str(ex)})
            except Exception:
                failures += 1
                pause = min(0.1 * 2**failures, 5.0)
                log.exception(f"{self.name}.error")
            self.stop.wait(pause)


def heartbeat_step(
    store: JobStore,
    worker_id: str,
    queues: list[str],
    slots: int,
    busy: Callable[[], int],
    broken: Callable[[], str | None],
) -> Callable[[], float]:
    """Beats only while the worker makes progress: once `broken` names a reason the beat
    stops, the worker exits and the sweeper recovers its jobs after WORKER_TTL. Each beat
    carries the handler types registered, so /queues can tell which types nobody runs."""
    host, pid = socket.gethostname(), os.getpid()
    interval = max(store.settings.worker_ttl.total_seconds() / 3, 0.05)

    def beat() -> float:
        reason = broken()
        if reason is not None:
            log.error("heartbeat.withheld", extra={"reason": reason})
            return interval
        store.heartbeat(worker_id, host, pid, queues, slots, busy(), handlers=registered_types())
        return interval

    return beat


def scheduler_step(store: JobStore) -> Callable[[], float]:
    """Promotes due delayed and retry jobs and fires due schedules (every worker does both: the
    scripts make a repeat a no-op); sleeps until the next one is due (at most 1 s)."""
    schedules = ScheduleStore(store.redis, store.settings)
    # Hand-offs owed between shards (common/outbox.py); None without QUEUE_SHARDS: no work.
    outbox = open_outbox(store.redis, store.settings)

    def promote() -> float:
        promoted, next_due = store.promote()
        fired = schedules.fire_due()
        # After firing, so a schedule's run owed to another shard is created in the same tick.
        moved = outbox.move() if outbox is not None else None
        if moved is not None and moved.more:
            return SCHEDULER_MIN_SLEEP_S
        if promoted:
            log.info("scheduler.promoted", extra={"count": promoted})
        if promoted or fired.more:
            return SCHEDULER_MIN_SLEEP_S  # more may be due at once
        dues = [due for due in (next_due, fired.next_due_ms) if due is not None]
        if not dues:
            return SCHEDULER_MAX_SLEEP_S
        next_due = min(dues)
        wait_s = (next_due - store.server_time_ms()) / 1000
        return min(max(wait_s, SCHEDULER_MIN_SLEEP_S), SCHEDULER_MAX_SLEEP_S)

    return promote


def sweeper_step(store: JobStore, worker_id: str) -> Callable[[], float]:
    """Under a Redis lock held for one interval, so the cluster sweeps about once per interval:
    recovers dead workers' lists, reclaims overdue jobs, cancels jobs past their expires_at
    that no claim met, prunes expired index entries."""
    settings = store.settings
    interval = settings.sweeper_interval.total_seconds()
    margin_ms = round(settings.worker_ttl.total_seconds() * 1000)

    def sweep() -> float:
        token = f"{worker_id}:{time.time_ns()}"
        if not store.acquire_lock(store.keys.sweeper_lock, token, round(interval * 1000)):
            return interval
        for dead in store.dead_workers():
            if dead == worker_id:
                continue  # our own heartbeat is late (Redis was away); we are alive
            requeued, failed = store.recover(dead)
            log.warning(
                "sweeper.recovered",
                extra={"dead_worker": dead, "requeued": requeued, "failed": failed},
            )
        reclaimed = store.reclaim(margin_ms)
        if reclaimed:
            log.warning("sweeper.reclaimed", extra={"count": reclaimed})
        for _ in range(10):  # bounded: at most 1,000 expired jobs cancelled per sweep
            if store.expire(100) < 100:
                break
        for _ in range(10):  # bounded: at most 10,000 index entries per sweep
            if store.prune(1000) < 1000:
                break
        return interval

    return sweep
