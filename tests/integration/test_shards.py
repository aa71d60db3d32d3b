"""Shard groups (common/shards.py) on a standalone Redis: the default shard keeps today's
layout, a named shard has its own hash tag and job ids, the API's ShardedStore routes by queue
and id, and a queue moved to another shard while it holds jobs stops the processes at start."""

from __future__ import annotations

import falcon.testing
import pytest
import redis

from tests.conftest import make_settings
from tests.support.redis_server import RedisServer
from workstream.api.app import create_app
from workstream.common import timeline
from workstream.common.errors import JobNotFoundError, SettingsError, ValidationError
from workstream.common.jobs import JobSpec, is_job_id
from workstream.common.keys import Keys
from workstream.common.leases import LeaseLostError, Leases
from workstream.common.schedules import ScheduleStore
from workstream.common.settings import Settings
from workstream.common.shards import (
    ShardedStore,
    misplaced,
    open_store,
    refuse_misplaced,
    shard_names,
    shard_of,
    shards_in_place,
    worker_shard,
)
from workstream.common.states import JobStatus
from workstream.common.store import JobStore


def sharded(server: RedisServer, shards: str = "emails:a,images:b") -> Settings:
    return make_settings(server.url, QUEUE_SHARDS=shards, RETRY_BACKOFF="0s")


def test_the_default_shard_keeps_the_namespace_prefix_and_a_named_one_has_its_own_tag() -> None:
    assert Keys("default").prefix == "ws:{default}:"
    assert Keys("default", "").job("x") == "ws:{default}:job:x"
    assert Keys("default", "a").prefix == "ws:{default/a}:"


def test_without_queue_shards_the_api_store_is_todays_job_store(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_server.url)
    store = open_store(redis_client, settings)
    assert type(store) is JobStore
    job_id = store.enqueue(JobSpec(type="t", queue="emails")).job_id
    assert len(job_id) == 32 and shard_of(job_id) == ""
    assert redis_client.exists(f"ws:{{default}}:job:{job_id}")


def test_queue_shards_are_parsed_and_bad_ones_refused(redis_server: RedisServer) -> None:
    settings = sharded(redis_server)
    assert settings.queue_shards == (("emails", "a"), ("images", "b"))
    assert shard_names(settings) == ("", "a", "b")
    for bad in ("emails", "emails:A", "emails:a-b", "emails:a,emails:b", ":a"):
        with pytest.raises(SettingsError, match="QUEUE_SHARDS"):
            make_settings(redis_server.url, QUEUE_SHARDS=bad)


def test_a_job_in_a_named_shard_says_its_shard_in_its_id_and_lives_under_its_tag(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    store = open_store(redis_client, sharded(redis_server))
    job_id = store.enqueue(JobSpec(type="t", queue="emails")).job_id
    plain = store.enqueue(JobSpec(type="t", queue="other")).job_id
    assert job_id.startswith("a:") and is_job_id(job_id) and shard_of(job_id) == "a"
    assert shard_of(plain) == "" and is_job_id(plain)
    assert redis_client.exists(f"ws:{{default/a}}:job:{job_id}")
    assert redis_client.llen("ws:{default/a}:queue:emails") == 1
    assert redis_client.llen("ws:{default}:queue:emails") == 0
    job = store.get_job(job_id)
    assert job is not None and job.queue == "emails"
    assert store.cancel(job_id).status is JobStatus.CANCELLED
    assert [j.id if j else None for j in store.get_jobs([plain, job_id])] == [plain, job_id]


def test_an_id_naming_a_shard_not_configured_is_not_found(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    store = open_store(redis_client, sharded(redis_server))
    ghost = "zz:" + "0" * 32
    assert store.get_job(ghost) is None and store.get_status(ghost) is None
    with pytest.raises(JobNotFoundError):
        store.cancel(ghost)


def test_only_the_stores_own_form_of_id_names_a_shard() -> None:
    assert shard_of("order:17") == "" and shard_of("a:" + "0" * 32) == "a"
    assert shard_of("0" * 32) == ""


def test_a_batch_across_shards_is_refused_and_writes_nothing(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    store = open_store(redis_client, sharded(redis_server))
    with pytest.raises(ValidationError, match="one shard"):
        store.enqueue_many([JobSpec(type="t", queue="emails"), JobSpec(type="t", queue="images")])
    assert redis_client.dbsize() == 0


def test_namespace_wide_views_add_up_every_shard(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = sharded(redis_server)
    store = open_store(redis_client, settings)
    assert isinstance(store, ShardedStore)
    for queue in ("emails", "images", "other"):
        store.enqueue_many([JobSpec(type="t", queue=queue)] * 2)
    shard_a = JobStore(redis_client, settings, "a")
    shard_a.heartbeat("wa", "h", 1, ["emails"], 2, 0)
    claimed = shard_a.claim("wa", 1, ["emails"])
    shard_a.complete("wa", claimed[0], "null")
    infos = {i.name: i for i in store.queue_infos(serving=True)}
    assert {n: i.pending for n, i in infos.items()} == {
        "default": 0, "emails": 1, "images": 2, "other": 2,
    }  # fmt: skip
    assert infos["emails"].serving is not None and infos["emails"].serving.workers == 1
    assert infos["images"].serving is not None and infos["images"].serving.workers == 0
    assert [w.id for w in store.live_workers()] == ["wa"] and store.live_worker_count() == 1
    assert store.stats()["completed|emails|t"] == 1
    minute = timeline.record(store)  # the dashboard's snapshot counts every shard
    snapshot = timeline.Snapshot.from_text(str(redis_client.get(store.keys.timeline(minute))))
    assert snapshot == timeline.Snapshot.from_stats(
        store.stats(), snapshot.at_ms if snapshot else 0
    )
    assert store.stats()["created|images|t"] == 2
    listed = store.list_jobs(limit=100).jobs
    assert len(listed) == 6
    pages, cursor, seen = 0, None, []
    while pages < 10:
        page = store.list_jobs(limit=4, cursor=cursor)
        seen += [j.id for j in page.jobs]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(j.id for j in listed)
    assert store.list_jobs(queue="emails", status=JobStatus.COMPLETED).jobs[0].queue == "emails"


def test_a_worker_serves_one_shard_and_is_told_so_for_a_mix(redis_server: RedisServer) -> None:
    assert (
        worker_shard(make_settings(redis_server.url, QUEUES="emails", QUEUE_SHARDS="emails:a"))
        == "a"
    )
    assert worker_shard(make_settings(redis_server.url, QUEUES="x,y")) == ""
    mixed = make_settings(redis_server.url, QUEUES="emails,other", QUEUE_SHARDS="emails:a")
    with pytest.raises(SettingsError, match="one shard"):
        worker_shard(mixed)


def test_moving_a_queue_that_holds_jobs_is_refused_until_it_is_drained(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """The upgrade path: jobs submitted before QUEUE_SHARDS moved `emails` stay where they
    are; the processes refuse to start until the old shard holds none of them."""
    before = make_settings(redis_server.url, RETRY_BACKOFF="0s")
    old = JobStore(redis_client, before)
    job_id = old.enqueue(JobSpec(type="t", queue="emails")).job_id
    after = sharded(redis_server)
    stores = [JobStore(redis_client, after, s) for s in shard_names(after)]
    assert misplaced(stores) == [
        "queue 'emails' holds 1 job(s) in the default shard but QUEUE_SHARDS places it in shard 'a'"
    ]
    with pytest.raises(SettingsError, match="drain the queue"):
        refuse_misplaced(stores, ["emails"])
    assert misplaced(stores, ["images"]) == []  # a worker of another queue may start
    old.heartbeat("w", "h", 1, ["emails"], 1, 0)
    [claimed] = old.claim("w", 1, ["emails"])
    assert misplaced(stores)  # running still counts
    old.complete("w", claimed, "null")
    assert old.get_status(job_id) is JobStatus.COMPLETED
    assert misplaced(stores) == []  # drained: the move is safe, the finished job stays readable
    refuse_misplaced(stores)


def test_a_schedule_for_a_queue_in_a_named_shard_lives_in_the_default_shard(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """Schedules live in the default shard; a run for a named shard's queue is handed off
    through the outbox (tests/integration/test_outbox.py)."""
    schedules = ScheduleStore(redis_client, sharded(redis_server))
    schedules.put("nightly", {"every": "1m", "job": {"type": "t", "queue": "emails"}})
    assert redis_client.exists(Keys("default").schedule("nightly"))
    assert not redis_client.exists(Keys("default", "a").schedule("nightly"))


def test_the_api_finds_cancels_and_refuses_by_shard_ids_also_percent_encoded(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """The Python client quotes ids in paths (a:... -> a%3A...); both forms reach the job."""
    settings = sharded(redis_server)
    client = falcon.testing.TestClient(create_app(settings, open_store(redis_client, settings)))
    created = client.simulate_post("/jobs", json={"type": "t", "queue": "emails"})
    assert created.status_code == 201
    job_id = created.json["id"]
    assert job_id.startswith("a:")
    assert client.simulate_get(f"/jobs/{job_id}").json["queue"] == "emails"
    encoded = job_id.replace(":", "%3A")
    assert client.simulate_get(f"/jobs/{encoded}").json["id"] == job_id
    assert client.simulate_post(f"/jobs/{encoded}/cancel").status_code == 200
    batch = client.simulate_post(
        "/jobs/batch",
        json={"jobs": [{"type": "t", "queue": "emails"}, {"type": "t", "queue": "images"}]},
    )
    assert batch.status_code == 400 and batch.json["error"]["code"] == "validation_error"
    queues = {q["name"]: q for q in client.simulate_get("/queues").json["queues"]}
    assert queues["emails"]["pending"] == 0 and "images" not in queues


def test_http_consumers_lease_and_answer_in_the_queues_shard(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    store = open_store(redis_client, sharded(redis_server))
    leases = Leases(store)
    job_id = store.enqueue(JobSpec(type="t", queue="emails")).job_id
    [lease], _ = leases.lease("c1", ["emails"], 1, 30)
    assert lease.job.id == job_id
    assert redis_client.llen("ws:{default/a}:processing:http:c1") == 1
    leases.extend(job_id, lease.token, 30)
    assert leases.complete(job_id, lease.token, '"done"').status is JobStatus.COMPLETED
    assert [w.id for w in store.live_workers()] == ["http:c1"]
    with pytest.raises(ValidationError, match="one shard"):
        leases.lease("c1", ["emails", "images"], 1, 30)
    with pytest.raises(LeaseLostError):
        leases.complete("zz:" + "0" * 32, lease.token, "1")


def test_a_plain_id_a_script_made_in_a_named_shard_is_found_there(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """Scripts make some jobs themselves (a callback job goes to its job's queue, so its
    shard) with 32 hex digits and no shard: a plain id is looked for in every shard."""
    settings = sharded(redis_server)
    store = open_store(redis_client, settings)
    plain = JobStore(redis_client, settings, "a").enqueue(JobSpec(type="t", queue="emails")).job_id
    assert shard_of(plain) == ""
    job = store.get_job(plain)
    assert job is not None and job.queue == "emails"
    assert store.get_status(plain) is JobStatus.PENDING
    assert [j.id if j else None for j in store.get_jobs([plain, "f" * 32])] == [plain, None]
    assert store.cancel(plain).status is JobStatus.CANCELLED
    store.delete(plain)
    assert store.get_job(plain) is None
    with pytest.raises(JobNotFoundError):
        store.retry(plain)


def test_jobs_left_in_a_shard_dropped_from_queue_shards_still_stop_the_start(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """emails moved back to the default shard while shard a (now in no QUEUE_SHARDS entry)
    still holds one of its jobs: the shard is known from the registry of shards started with."""
    before = sharded(redis_server, "emails:a")
    assert shards_in_place(redis_client, before)  # registers shard a
    open_store(redis_client, before).enqueue(JobSpec(type="t", queue="emails"))
    after = sharded(redis_server, "images:b")
    assert redis_client.smembers("ws:{default}:shards") == {"a"}
    assert not shards_in_place(redis_client, after)
    assert not shards_in_place(redis_client, after, ["emails"])
    assert shards_in_place(redis_client, after, ["images"])
