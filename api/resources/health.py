"""/health: liveness plus a Redis ping; 503 when Redis does not answer."""

from __future__ import annotations

import falcon
import redis

from workstream.common.store import JobStore


class Health:
    def __init__(self, store: JobStore) -> None:
        self._store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            self._store.ping()
        except redis.exceptions.RedisError:
            resp.status = falcon.HTTP_503
            resp.media = {"status": "degraded", "redis": "unavailable"}
            return
        resp.media = {"status": "ok", "redis": "ok"}
