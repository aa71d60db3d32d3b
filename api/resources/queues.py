"""/queues: depths, pause/resume, delete, and bounded bulk actions on a queue's failed jobs.
Each queue also says who serves it: live workers listing it (`workers`), whether pending jobs
wait with none (`unserved`), and the types used in it that none of them handles."""

from __future__ import annotations

import falcon

from workstream.api import validation
from workstream.common.limits import Limits
from workstream.common.store import JobStore

LIMITS_BODY_BYTES = 4096


class QueueCollection:
    def __init__(self, store: JobStore) -> None:
        self._store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        infos = self._store.queue_infos(serving=True)
        resp.media = {"queues": [info.to_json() for info in infos]}


class QueueItem:
    """A queue exists when configured (QUEUES) or in use (a job was submitted to it and it was
    not deleted). Any request naming one that does not exist is a 404 queue_not_found that
    creates nothing; a malformed name is a 400 validation_error naming `name`."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    def _existing(self, name: str) -> str:
        self._store.require_queue(validation.queue_name(name))
        return name

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        resp.media = self._store.queue_info(self._existing(name), serving=True).to_json()

    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        """Only an empty queue (409 queue_not_empty otherwise): its name and counters go."""
        self._store.delete_queue(validation.queue_name(name))
        resp.status = falcon.HTTP_204

    def on_post_pause(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self._store.pause(validation.queue_name(name))
        resp.media = self._store.queue_info(name, serving=True).to_json()

    def on_post_resume(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self._store.resume(validation.queue_name(name))
        resp.media = self._store.queue_info(name, serving=True).to_json()

    def on_get_limits(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        resp.media = self._store.limits(self._existing(name)).to_json()

    def on_put_limits(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        """Replaces the queue's limits: rate ("50/s", "1000/m", "10/h"), concurrency and
        group_concurrency (1 or more), each null or absent for none. Global across workers,
        judged when a job is claimed."""
        limits = Limits.from_mapping(validation.read_json(req, LIMITS_BODY_BYTES))
        self._store.set_limits(self._existing(name), limits)
        resp.media = limits.to_json()

    def on_delete_limits(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self._store.set_limits(self._existing(name), Limits())
        resp.status = falcon.HTTP_204

    def on_post_retry_failed(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        retried = self._store.retry_failed(self._existing(name))
        resp.media = {"queue": name, "retried": retried}

    def on_post_purge_failed(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        purged = self._store.purge_failed(self._existing(name))
        resp.media = {"queue": name, "purged": purged}
