"""How fast each queue drains, for the Retry-After of a 429 queue_full.

A full queue frees room as fast as its jobs finish, so a client told "1 s" while the queue
finishes one job a minute only hammers the API. The rate comes from the stats counters
(`completed|<queue>|<type>` and `failed|...`): one HGETALL per API process at most every
SAMPLE_S, and only while 429s are being answered, so an idle or healthy API pays nothing."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

import redis

SAMPLE_S = 1.0  # at most one read of the stats hash per second per process
WINDOW_S = 30.0  # the rate is measured over (up to) this much recent history
MIN_SPAN_S = 1.0  # two samples closer than this say nothing reliable
RETRY_AFTER_MIN_S = 1
RETRY_AFTER_MAX_S = 60
UNKNOWN_RETRY_AFTER_S = 5  # the first 429 of a while: no rate measured yet
DRAINS = ("completed", "failed")  # terminal outcomes that take a job out of the queue


def finished_per_queue(stats: Mapping[str, int]) -> dict[str, int]:
    """Jobs that finished, per queue, from the stats hash's `<counter>|<queue>|<type>` fields."""
    totals: dict[str, int] = {}
    for field, value in stats.items():
        counter, _, rest = field.partition("|")
        if counter in DRAINS and rest:
            queue, _, job_type = rest.rpartition("|")
            if queue and job_type:
                totals[queue] = totals.get(queue, 0) + int(value)
    return totals


class DrainRate:
    """Thread-safe; `read_stats` is JobStore.stats (one HGETALL)."""

    def __init__(
        self,
        read_stats: Callable[[], Mapping[str, int]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_stats = read_stats
        self._clock = clock
        self._samples: deque[tuple[float, dict[str, int]]] = deque()
        self._lock = threading.Lock()

    def per_second(self, queue: str) -> float | None:
        """Jobs finished per second in `queue` over the window, None until measurable."""
        with self._lock:
            now = self._clock()
            if not self._samples or now - self._samples[-1][0] >= SAMPLE_S:
                try:
                    self._samples.append((now, finished_per_queue(self._read_stats())))
                except redis.exceptions.RedisError:
                    return None  # the 429 itself must still be answered
            while now - self._samples[0][0] > WINDOW_S:  # never the sample just taken
                self._samples.popleft()
            (first_at, first), (last_at, last) = self._samples[0], self._samples[-1]
        span = last_at - first_at
        if span < MIN_SPAN_S:
            return None
        return max(0, last.get(queue, 0) - first.get(queue, 0)) / span

    def retry_after(self, queue: str, needed: int) -> int:
        """Seconds until `needed` jobs have left `queue` at the recent rate, in 1..60."""
        rate = self.per_second(queue)
        if rate is None:
            return UNKNOWN_RETRY_AFTER_S
        if rate <= 0:
            return RETRY_AFTER_MAX_S
        return min(RETRY_AFTER_MAX_S, max(RETRY_AFTER_MIN_S, math.ceil(needed / rate)))
