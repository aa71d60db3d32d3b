"""A running job asked to stop whose run ends without its holder's answer (the worker died, or
it ran past its deadline) ends cancelled, not retried."""

from __future__ import annotations

import redis

from workstream.common.jobs import ClaimedJob, JobSpec
from workstream.common.states import JobStatus
from workstream.common.store import JobStore


def running(store: JobStore) -> ClaimedJob:
    store.enqueue(JobSpec(type="echo", max_attempts=3))
    (claimed,) = store.claim("w1", 1, ["default"])
    return claimed


def test_a_dead_workers_job_asked_to_stop_ends_cancelled(
    store: JobStore, redis_client: redis.Redis
) -> None:
    job = running(store)
    store.cancel(job.id)
    assert store.recover("w1") == (0, 0)
    ended = store.get_job(job.id)
    assert ended is not None and ended.status is JobStatus.CANCELLED
    assert ended.history is not None and ended.history[-1]["outcome"] == "lost"
    assert redis_client.llen(store.keys.queue("default")) == 0
    assert redis_client.ttl(store.keys.job(job.id)) > 0
    assert store.stats().get("cancelled|default|echo") == 1


def test_an_overdue_job_asked_to_stop_ends_cancelled(
    store: JobStore, redis_client: redis.Redis
) -> None:
    job = running(store)
    store.cancel(job.id)
    redis_client.zadd(store.keys.deadlines, {job.id: 0})
    assert store.reclaim(margin_ms=0) == 1
    assert store.get_status(job.id) is JobStatus.CANCELLED
    assert redis_client.zcard(store.keys.scheduled("default")) == 0
    assert redis_client.llen(store.keys.queue("default")) == 0
