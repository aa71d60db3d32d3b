"""/workers: the live workers (heartbeat within WORKER_TTL, by Redis server time), with the
handler types their heartbeat carries and the jobs they hold now (slots_busy: the length of
each one's processing list at request time, not a heartbeat old)."""

from __future__ import annotations

from typing import Any

import falcon

from workstream.common.serialization import ms_to_rfc3339
from workstream.common.store import JobStore, WorkerInfo


def worker_json(info: WorkerInfo, now_ms: int) -> dict[str, Any]:
    return {
        "id": info.id,
        "host": info.host,
        "pid": info.pid,
        "queues": list(info.queues),
        "handlers": list(info.handlers),
        "slots_busy": info.slots_busy,
        "slots_total": info.slots_total,
        "started_at": ms_to_rfc3339(info.started_at),
        "last_heartbeat": ms_to_rfc3339(info.last_heartbeat),
        "heartbeat_age_s": round(max(now_ms - info.last_heartbeat, 0) / 1000, 3),
    }


class WorkerCollection:
    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._ttl_ms = round(store.settings.worker_ttl.total_seconds() * 1000)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        now_ms = self._store.server_time_ms()
        workers = self._store.live_workers()
        resp.media = {"workers": [worker_json(w, now_ms) for w in workers]}
