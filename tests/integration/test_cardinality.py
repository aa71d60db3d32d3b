"""Names clients invent are bounded: MAX_QUEUES and MAX_TYPES refuse a new name with nothing
written, and queues that were used and emptied can be deleted without a trace, so the queues
set, the stats hash and /metrics stay small."""

from __future__ import annotations

import time

import falcon.testing
import pytest
import redis

from tests.conftest import make_settings
from workstream.api.app import create_app
from workstream.common.errors import TooManyQueuesError, TooManyTypesError
from workstream.common.jobs import JobSpec
from workstream.common.settings import Settings
from workstream.common.store import JobStore


def capped_store(client: redis.Redis, settings: Settings, **env: str) -> JobStore:
    return JobStore(client, make_settings(settings.redis_url, **env))


def test_a_job_for_a_queue_past_max_queues_is_refused_and_writes_nothing(
    redis_client: redis.Redis, settings: Settings
) -> None:
    store = capped_store(redis_client, settings, MAX_QUEUES="2")
    store.enqueue(JobSpec(type="t", queue="a"))
    store.enqueue(JobSpec(type="t", queue="b"))
    before = sorted(redis_client.keys())
    with pytest.raises(TooManyQueuesError):
        store.enqueue(JobSpec(type="t", queue="c"))
    with pytest.raises(TooManyQueuesError):  # a batch with one new queue: all refused
        store.enqueue_many([JobSpec(type="t", queue="a"), JobSpec(type="t", queue="d")])
    assert sorted(redis_client.keys()) == before
    assert store.queue_names() == ["a", "b", "default"]
    store.enqueue(JobSpec(type="t", queue="a"))  # a queue in use still takes jobs


def test_a_configured_queue_is_accepted_past_max_queues(
    redis_client: redis.Redis, settings: Settings
) -> None:
    store = capped_store(redis_client, settings, MAX_QUEUES="1", QUEUES="default,mail")
    store.enqueue(JobSpec(type="t", queue="a"))
    store.enqueue(JobSpec(type="t", queue="mail"))
    store.enqueue(JobSpec(type="t", queue="default"))


def test_a_job_of_a_type_past_max_types_is_refused_and_writes_nothing(
    redis_client: redis.Redis, settings: Settings
) -> None:
    store = capped_store(redis_client, settings, MAX_TYPES="2")
    store.enqueue_many([JobSpec(type="x", queue="a"), JobSpec(type="y", queue="a")])
    before = {key: redis_client.type(key) for key in redis_client.keys()}
    stats = store.stats()
    with pytest.raises(TooManyTypesError):
        store.enqueue_many([JobSpec(type="x", queue="a"), JobSpec(type="z", queue="a")])
    assert {key: redis_client.type(key) for key in redis_client.keys()} == before
    assert store.stats() == stats and store.queue_info("a").pending == 2
    with pytest.raises(TooManyTypesError):  # counted per queue: x in b is a third pair
        store.enqueue(JobSpec(type="x", queue="b"))
    store.enqueue(JobSpec(type="y", queue="a"))  # a pair in use still takes jobs


def test_over_the_caps_the_api_answers_409_with_a_stable_code(
    redis_client: redis.Redis, settings: Settings
) -> None:
    capped = make_settings(settings.redis_url, MAX_QUEUES="1", MAX_TYPES="1")
    client = falcon.testing.TestClient(create_app(capped, JobStore(redis_client, capped)))
    assert client.simulate_post("/jobs", json={"type": "t", "queue": "a"}).status_code == 201
    resp = client.simulate_post("/jobs", json={"type": "t", "queue": "b"})
    assert (resp.status_code, resp.json["error"]["code"]) == (409, "too_many_queues")
    resp = client.simulate_post("/jobs/batch", json={"jobs": [{"type": "u", "queue": "a"}]})
    assert (resp.status_code, resp.json["error"]["code"]) == (409, "too_many_types")


def _drain(store: JobStore, queues: list[str]) -> None:
    for name in queues:
        (job,) = store.claim("w1", 1, [name])
        store.complete("w1", job, "{}")


def test_deleting_a_queue_frees_its_types_for_others(
    redis_client: redis.Redis, settings: Settings
) -> None:
    store = capped_store(redis_client, settings, MAX_TYPES="1")
    store.enqueue(JobSpec(type="x", queue="a"))
    with pytest.raises(TooManyTypesError):
        store.enqueue(JobSpec(type="y", queue="b"))
    (job,) = store.claim("w1", 1, ["a"])
    store.complete("w1", job, "{}")
    store.delete_queue("a")
    store.enqueue(JobSpec(type="y", queue="b"))


def one_job_queues_used_and_deleted(store: JobStore, redis_client: redis.Redis, n: int) -> None:
    """Many one-job queues (each with its own type), run, then deleted through the API."""
    names = [f"q{i}" for i in range(n)]
    for start in range(0, n, 500):
        chunk = names[start : start + 500]
        store.enqueue_many([JobSpec(type=f"t-{name}", queue=name) for name in chunk])
    _drain(store, names)
    client = falcon.testing.TestClient(create_app(store.settings, store))
    assert len(client.simulate_get("/queues").json["queues"]) == n + 1
    for name in names:
        assert client.simulate_delete(f"/queues/{name}").status_code == 204
    assert store.queue_names() == ["default"]
    leftover = [f for f in store.stats() if any(p.startswith("q") for p in f.split("|")[1:2])]
    assert leftover == []
    assert store.inflight() == {}
    assert not [k for k in redis_client.keys() if ":types:" in k or ":queue:" in k]
    started = time.monotonic()
    metrics = client.simulate_get("/metrics")
    assert metrics.status_code == 200 and "q0" not in metrics.text
    assert len(metrics.content) < 20_000 and time.monotonic() - started < 1.0


def test_many_queues_used_emptied_and_deleted_leave_no_names_or_counters(
    redis_client: redis.Redis, store: JobStore
) -> None:
    one_job_queues_used_and_deleted(store, redis_client, 200)
