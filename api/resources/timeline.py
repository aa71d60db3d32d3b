"""/stats/timeline: the last N minutes of throughput and latency, per minute, from snapshots
kept in Redis (common/timeline.py), so the dashboard's charts start full."""

from __future__ import annotations

import re
import threading

import falcon

from workstream.api.errors import validation_error
from workstream.common import timeline
from workstream.common.store import JobStore

DEFAULT_MINUTES = 15
MINUTES_PATTERN = re.compile(r"[0-9]{1,3}")


def minutes(req: falcon.Request) -> int:
    raw = req.get_param("minutes")
    if raw is None:
        return DEFAULT_MINUTES
    if not MINUTES_PATTERN.fullmatch(raw) or not 1 <= int(raw) <= timeline.MAX_MINUTES:
        raise validation_error("minutes", f"expected an integer from 1 to {timeline.MAX_MINUTES}")
    return int(raw)


class Timeline:
    def __init__(self, store: JobStore) -> None:
        self._store = store

    def start_sampler(self, stopping: threading.Event) -> None:
        """For a serving process: keeps a snapshot a minute in Redis until `stopping` is set."""
        timeline.Sampler(self._store, stopping).start()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = timeline.read(self._store, minutes(req))
