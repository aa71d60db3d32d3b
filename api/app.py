"""create_app: every route of the API in one place."""

from __future__ import annotations

import logging
import threading

import falcon

from workstream.api.drain import DrainRate
from workstream.api.errors import register_error_handlers
from workstream.api.middleware import BearerAuth, RequestContext
from workstream.api.resources.batches import BatchCollection, BatchItem
from workstream.api.resources.events import EventHub, EventStream, Source
from workstream.api.resources.health import Health
from workstream.api.resources.jobs import (
    JobBatch,
    JobCollection,
    JobItem,
    LegacyResult,
    LegacyStatus,
)
from workstream.api.resources.leases import LeaseAnswers, LeaseCollection, LeaseWaiter
from workstream.api.resources.longpoll import Waiter
from workstream.api.resources.metrics import Metrics
from workstream.api.resources.openapi import OpenApi
from workstream.api.resources.queues import QueueCollection, QueueItem
from workstream.api.resources.schedules import add_schedule_routes
from workstream.api.resources.timeline import Timeline
from workstream.api.resources.workers import WorkerCollection
from workstream.api.ui import register_ui
from workstream.common.batches import BatchStore
from workstream.common.events import Filter
from workstream.common.redis_conn import connect
from workstream.common.schedules import ScheduleStore
from workstream.common.serialization import dumps_reply
from workstream.common.settings import Settings
from workstream.common.shards import shard_of, shard_of_queue
from workstream.common.store import JobStore

log = logging.getLogger(__name__)

# Threads kept free of long-polls so that submissions and reads always find one.
RESERVED_THREADS = 16
# The event hub blocks 1 s per XREAD; its socket waits longer than that.
HUB_SOCKET_TIMEOUT_S = 5.0


def create_app(
    settings: Settings,
    store: JobStore,
    *,
    stopping: threading.Event | None = None,
    waiters: int | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    """`waiters` caps concurrent long-polls (default API_THREADS - 16); setting `stopping`
    ends every long-poll at once (shutdown)."""
    middleware: list[RequestContext | BearerAuth] = [RequestContext()]
    if settings.api_tokens or settings.api_scoped_tokens:
        middleware.append(BearerAuth(settings.api_tokens, settings.api_scoped_tokens))
    else:
        log.warning("api.auth_disabled", extra={"hint": "set API_TOKEN to require a bearer token"})
    app = falcon.App(middleware=middleware)
    # Replies (resp.media) through orjson; request bodies are parsed by api.validation.
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(dumps=dumps_reply)
    register_error_handlers(app, DrainRate(store.stats))

    # Event streams (GET /events) hold a thread each like long-polls: their share comes out of
    # the long-polls', so RESERVED_THREADS stay free for everything else.
    streams = min(settings.events_streams, max(1, (settings.api_threads - RESERVED_THREADS) // 2))
    capacity = (
        waiters
        if waiters is not None
        else max(1, settings.api_threads - RESERVED_THREADS - streams)
    )
    sources = _event_sources(settings, store, stopping)
    app.add_route(
        "/events",
        EventStream(
            sources,
            lambda wanted: _shard_of_filter(settings, wanted),
            streams=streams,
            hold_s=settings.events_hold.total_seconds(),
            stopping=stopping or threading.Event(),
        ),
    )

    def hub_for(job_id: str) -> EventHub | None:
        source = sources.get(shard_of(job_id))
        return source.hub if source is not None else None

    jobs = JobCollection(store)
    item = JobItem(store, Waiter(store, capacity, stopping=stopping, hub_for=hub_for))
    queue = QueueItem(store)
    app.add_route("/jobs", jobs)
    app.add_route("/job", jobs, suffix="submit")
    app.add_route("/jobs/batch", JobBatch(store))
    app.add_route("/jobs/{job_id}", item)
    app.add_route("/jobs/{job_id}/cancel", item, suffix="cancel")
    app.add_route("/jobs/{job_id}/retry", item, suffix="retry")
    batches = BatchStore(store)
    batch = BatchItem(batches)
    app.add_route("/batches", BatchCollection(batches))
    app.add_route("/batches/{batch_id}", batch)
    app.add_route("/batches/{batch_id}/jobs", batch, suffix="jobs")
    app.add_route("/batches/{batch_id}/seal", batch, suffix="seal")
    # Lease long-polls have a bound of their own, a quarter of the job waits'.
    app.add_route("/leases", LeaseCollection(store, LeaseWaiter(capacity // 4, stopping=stopping)))
    answers = LeaseAnswers(store)
    app.add_route("/jobs/{job_id}/complete", answers, suffix="complete")
    app.add_route("/jobs/{job_id}/fail", answers, suffix="fail")
    app.add_route("/jobs/{job_id}/extend", answers, suffix="extend")
    app.add_route("/status/{job_id}", LegacyStatus(store))
    app.add_route("/result/{job_id}", LegacyResult(store))
    app.add_route("/queues", QueueCollection(store))
    app.add_route("/queues/{name}", queue)
    app.add_route("/queues/{name}/pause", queue, suffix="pause")
    app.add_route("/queues/{name}/resume", queue, suffix="resume")
    app.add_route("/queues/{name}/limits", queue, suffix="limits")
    app.add_route("/queues/{name}/failed/retry", queue, suffix="retry_failed")
    app.add_route("/queues/{name}/failed/purge", queue, suffix="purge_failed")
    app.add_route("/workers", WorkerCollection(store))
    add_schedule_routes(app, ScheduleStore(store.redis, settings))
    app.add_route("/metrics", Metrics(store))
    timeline = Timeline(store)
    app.add_route("/stats/timeline", timeline)
    if stopping is not None:  # a serving process, not a test client: keep the timeline filled
        timeline.start_sampler(stopping)
    app.add_route("/health", Health(store))
    app.add_route("/openapi.json", OpenApi(settings.max_payload_bytes))
    register_ui(app)
    app.add_route("/", Home())
    return app


def _event_sources(
    settings: Settings, store: JobStore, stopping: threading.Event | None
) -> dict[str, Source]:
    """Each shard's event stream with its hub (none when EVENTS_MAX=0). A hub reads on a
    connection of its own, so XREAD BLOCK never holds one of the request threads' pool; it
    starts on first use and stops when unused (HUB_IDLE_S), also in a test client, which has
    no `stopping`."""
    if settings.events_max <= 0:
        return {}
    stop = stopping or threading.Event()
    stores: dict[str, JobStore] = getattr(store, "stores", None) or {"": store}
    return {
        shard: Source(
            shard_store.redis,
            shard_store.keys,
            EventHub(
                lambda: connect(settings, dedicated=True, socket_timeout=HUB_SOCKET_TIMEOUT_S),
                shard_store.keys,
                stop,
            ),
        )
        for shard, shard_store in stores.items()
    }


def _shard_of_filter(settings: Settings, wanted: Filter) -> str:
    """The shard whose stream serves a filter: its job's, its queue's, else the default."""
    if wanted.job is not None:
        return shard_of(wanted.job)
    if wanted.queue is not None:
        return shard_of_queue(settings, wanted.queue)
    return ""


class Home:
    """`GET /` in a browser (the URL the dev banner prints) lands on the dashboard."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPFound("/ui")
