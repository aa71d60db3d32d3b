"""/queues: depths, pause/resume, and bounded bulk actions on a queue's failed jobs."""

from __future__ import annotations

import falcon

from workstream.api import validation
from workstream.common.store import JobStore


class QueueCollection:
    def __init__(self, store: JobStore) -> None:
        self._store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"queues": [info.to_json() for info in self._store.queue_infos()]}


class QueueItem:
    """A well-formed queue name that was never used answers zero counts: queues are created by
    use. A malformed name is a 400 validation_error naming `name`."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        resp.media = self._store.queue_info(validation.queue_name(name)).to_json()

    def on_post_pause(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self._store.pause(validation.queue_name(name))
        resp.media = self._store.queue_info(name).to_json()

    def on_post_resume(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self._store.resume(validation.queue_name(name))
        resp.media = self._store.queue_info(name).to_json()

    def on_post_retry_failed(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        retried = self._store.retry_failed(validation.queue_name(name))
        resp.media = {"queue": name, "retried": retried}

    def on_post_purge_failed(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        purged = self._store.purge_failed(validation.queue_name(name))
        resp.media = {"queue": name, "purged": purged}
