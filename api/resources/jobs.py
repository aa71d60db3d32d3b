"""/jobs: submit (one or a batch), read (with long-poll), list, cancel, retry, delete."""

from __future__ import annotations

from collections import Counter

import falcon

from workstream.api import validation
from workstream.api.errors import ApiError, validation_error
from workstream.api.resources.longpoll import Waiter
from workstream.common.errors import JobNotFoundError
from workstream.common.jobs import Job
from workstream.common.states import JobStatus
from workstream.common.store import JobStore


def _get(store: JobStore, job_id: str) -> Job:
    job = store.get_job(job_id)
    if job is None:
        raise JobNotFoundError(job_id)
    return job


class JobCollection:
    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._limit = store.settings.max_payload_bytes
        self._allowed = store.settings.http_job_allowed_networks

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        key = validation.idempotency_header(req)
        spec = validation.job_spec(validation.read_json(req, self._limit), self._allowed, key)
        job, created = self._store.submit(spec)
        resp.media = job.to_json()
        if created:
            resp.status = falcon.HTTP_201
            resp.location = f"/jobs/{job.id}"

    # POST /job, the seed's spelling, kept forever.
    on_post_submit = on_post

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        page = self._store.list_jobs(
            status=validation.status_filter(req),
            queue=validation.name_filter(req, "queue"),
            job_type=validation.name_filter(req, "type"),
            limit=validation.limit(req),
            cursor=validation.cursor(req),
        )
        resp.media = {"jobs": [job.to_json() for job in page.jobs], "next_cursor": page.next_cursor}


class JobBatch:
    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._limit = store.settings.max_payload_bytes
        self._allowed = store.settings.http_job_allowed_networks

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.get_header("Idempotency-Key") is not None:
            # One key cannot stand for N jobs: each entry carries its own.
            raise validation_error(
                "Idempotency-Key", "a batch takes an idempotency_key per entry, in the body"
            )
        specs = validation.batch_specs(validation.read_json(req, self._limit), self._allowed)
        req.context.queue_demand = demand = Counter(spec.queue for spec in specs)
        self._refuse_what_never_fits(demand)
        results = self._store.enqueue_many(specs)
        resp.status = falcon.HTTP_201
        resp.media = {
            "jobs": [
                {"id": r.job_id, "status": r.status.value, "created": r.created} for r in results
            ]
        }

    def _refuse_what_never_fits(self, demand: Counter[str]) -> None:
        """A batch bigger than a queue's whole capacity would get 429s forever: a 400 that no
        retry can change, so clients split it instead of waiting."""
        capacity = self._store.settings.job_queue_capacity
        queue, count = demand.most_common(1)[0]
        if count > capacity:
            raise ApiError(
                400,
                "batch_exceeds_capacity",
                f"the batch puts {count} jobs in queue {queue!r}, more than it can ever hold"
                f" ({capacity}, JOB_QUEUE_CAPACITY); send at most {capacity} per request",
                field="jobs",
            )


class JobItem:
    def __init__(self, store: JobStore, waiter: Waiter) -> None:
        self._store = store
        self._waiter = waiter

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job_id = validation.job_id(job_id)
        wait = validation.wait_seconds(req)
        job = _get(self._store, job_id)
        if wait > 0 and not job.status.is_terminal:
            self._waiter.wait_terminal(job_id, wait)
            job = _get(self._store, job_id)
        resp.media = job.to_json()

    def on_delete(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        self._store.delete(validation.job_id(job_id))
        resp.status = falcon.HTTP_204

    def on_post_cancel(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job = self._store.cancel(validation.job_id(job_id))
        if job.status is JobStatus.PROCESSING:  # asked to stop; it ends cancelled when it does
            resp.status = falcon.HTTP_202
        resp.media = job.to_json()

    def on_post_retry(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        resp.media = self._store.retry(validation.job_id(job_id)).to_json()


class LegacyStatus:
    """GET /status/{id}, the seed's shape."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job = _get(self._store, validation.job_id(job_id))
        resp.media = {"id": job.id, "status": job.status.value}


class LegacyResult:
    """GET /result/{id}, the seed's shape; 409 not_finished until the job is terminal."""

    def __init__(self, store: JobStore) -> None:
        self._store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job = _get(self._store, validation.job_id(job_id))
        if not job.status.is_terminal:
            raise ApiError(409, "not_finished", f"job {job.id} is {job.status.value}")
        resp.media = {
            "id": job.id,
            "status": job.status.value,
            "result": job.result,
            "error": job.error,
        }
