"""connect() on a redis+cluster:// URL: the JobStore's scripts, pipelines, BLMOVE and health
checks on a real three-master cluster (tests.support.cluster)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from tests.support.cluster import RedisCluster
from workstream.common import timeline
from workstream.common.batches import BatchStore
from workstream.common.jobs import JobSpec
from workstream.common.keys import Keys
from workstream.common.limits import Limits
from workstream.common.outbox import Outbox
from workstream.common.redis_conn import connect, unavailable_reason
from workstream.common.schedules import ScheduleStore
from workstream.common.settings import Settings
from workstream.common.shards import open_store
from workstream.common.states import JobStatus
from workstream.common.store import JobStore
from workstream.worker.check import check


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    started = RedisCluster.start()
    yield started
    started.stop()


@pytest.fixture
def settings(cluster: RedisCluster) -> Iterator[Settings]:
    client = cluster.client()
    for node in client.get_primaries():  # type: ignore[no-untyped-call]
        client.get_redis_connection(node).flushall()
    client.close()
    yield Settings.from_environ({"REDIS_URL": cluster.url, "WORKER_TTL": "2s"})


def store_on(settings: Settings) -> JobStore:
    return JobStore(connect(settings, dedicated=True), settings)


def test_a_job_is_submitted_started_and_completed_through_a_cluster_client(
    settings: Settings,
) -> None:
    store = store_on(settings)
    job_id = store.enqueue(JobSpec(type="echo", queue="q", payload={"n": 1})).job_id
    claimed = store.take_and_start("w1", "q", 1.0)  # BLMOVE and start.lua, pipelined
    assert claimed is not None and claimed.id == job_id
    codes, _ = store.complete_many("w1", [(claimed, '{"ok": true}')], 0, ["q"])
    assert codes == ["ok"]
    job = store.get_job(job_id)
    assert job is not None and job.status is JobStatus.COMPLETED


def test_claim_fail_cancel_and_the_views_work_on_a_cluster(settings: Settings) -> None:
    store = store_on(settings)
    ids = [r.job_id for r in store.enqueue_many([JobSpec(type="t", queue="q")] * 3)]
    claimed = store.claim("w1", 2, ["q"])
    assert [c.id for c in claimed] == ids[:2]
    assert store.fail("w1", claimed[0], "boom", permanent=True) is JobStatus.FAILED
    assert store.cancel(ids[2]).status is JobStatus.CANCELLED
    store.heartbeat("w1", "host", 1, ["q"], 2, 1)
    [info] = store.queue_infos(["q"], serving=True)
    assert (info.pending, info.processing, info.failed) == (0, 1, 1)
    assert [w.id for w in store.live_workers()] == ["w1"]
    page = store.list_jobs(limit=10)
    assert sorted(j.id for j in page.jobs) == sorted(ids)
    assert store.retry_failed("q") == 1  # call_many: a pipeline of scripts
    assert store.get_status(ids[0]) is JobStatus.PENDING
    assert store.ping() and store.server_time_ms() > 0


def flush_scripts(client: redis.RedisCluster) -> None:
    for node in client.get_nodes():  # type: ignore[no-untyped-call]
        client.get_redis_connection(node).script_flush()


def test_scripts_lost_by_every_node_are_loaded_again(settings: Settings) -> None:
    store = store_on(settings)
    store.enqueue(JobSpec(type="t", queue="q"))
    client = store.redis
    assert isinstance(client, redis.RedisCluster)
    flush_scripts(client)
    store.enqueue(JobSpec(type="t", queue="q"))  # NOSCRIPT: loaded, sent again
    first, _ = store.claim("w1", 5, ["q"])
    store.fail("w1", first, "boom", permanent=True)
    flush_scripts(client)
    assert store.retry_failed("q") == 1  # call_many's pipeline after NOSCRIPT
    flush_scripts(client)
    assert store.take_and_start("w2", "q", 0.1) is not None  # blmove_then's pipeline


def test_replicated_durability_waits_for_the_slots_replica(settings: Settings) -> None:
    replicated = Settings.from_environ(
        {"REDIS_URL": settings.redis_url, "DURABILITY": "replicated", "REPLICA_ACKS": "1"}
    )
    store = store_on(replicated)
    result = store.enqueue(JobSpec(type="t", queue="q", idempotency_key="k1"))
    again = store.enqueue(JobSpec(type="t", queue="q", idempotency_key="k1"))  # a replay
    assert result.created and not again.created and again.job_id == result.job_id
    assert store.cancel(result.job_id).status is JobStatus.CANCELLED


def test_the_worker_healthcheck_reads_heartbeats_on_a_cluster(settings: Settings) -> None:
    store = store_on(settings)
    store.heartbeat("w1", "h", 1, ["q"], 1, 0)
    time.sleep(0.01)
    healthy, reason = check(settings, host="h")
    assert healthy, reason


def test_limits_schedules_and_the_timeline_work_on_a_cluster(settings: Settings) -> None:
    """Their transactions (MULTI on one slot) and keyless TIME beside a keyed read."""
    store = store_on(settings)
    store.enqueue(JobSpec(type="t", queue="q"))
    store.set_limits("q", Limits(concurrency=2))
    assert store.limits("q").concurrency == 2
    schedules = ScheduleStore(store.redis, settings)
    schedules.put("nightly", {"every": "1m", "job": {"type": "t", "queue": "q"}})
    assert [s["id"] for s in schedules.list()] == ["nightly"]
    schedules.delete("nightly")
    minute = timeline.record(store)  # TIME and the stats, read apart on a cluster
    assert store.redis.exists(store.keys.timeline(minute))
    assert isinstance(timeline.read(store, 5), dict)  # MGET of one slot's keys
    assert schedules.fire_due().fired == 0  # TIME beside a keyed read, pipelined


def test_a_shard_moved_to_another_master_is_followed_and_refused_only_while_split(
    cluster: RedisCluster, settings: Settings
) -> None:
    """Resharding: while the shard's slot is half migrated a script whose keys are split is
    refused before it runs (TRYAGAIN: the API's 503), and once the slot has moved the same
    client follows it (MOVED) and loads the scripts on the new master."""
    sharded = Settings.from_environ({"REDIS_URL": settings.redis_url, "QUEUE_SHARDS": "q:m"})
    store = open_store(connect(sharded), sharded)
    shard = store.stores["m"]  # type: ignore[attr-defined]
    slot = int(shard.redis.keyslot(shard.keys.jobs))
    source = cluster.master_of_slot(slot)
    target = next(cluster.node(p) for p in cluster.master_ports() if p != source.port)
    ids = [store.enqueue(JobSpec(type="t", queue="q")).job_id for _ in range(3)]
    cluster.start_moving(slot, target, keys=2)
    with pytest.raises(redis.exceptions.RedisError) as refused:
        store.enqueue(JobSpec(type="t", queue="q"))
    assert unavailable_reason(refused.value) == "TRYAGAIN"
    assert isinstance(refused.value, redis.exceptions.ResponseError)  # the API's 503 handler
    cluster.finish_moving(slot, target)
    assert cluster.master_of_slot(slot).port == target.port
    assert sorted(c.id for c in shard.claim("w1", 5, ["q"])) == sorted(ids)  # nothing else
    assert store.enqueue(JobSpec(type="t", queue="q")).job_id.startswith("m:")


def test_a_schedules_run_and_a_batch_callback_cross_slots_through_the_outbox(
    cluster: RedisCluster,
) -> None:
    """A run and a callback owed by the default shard's scripts to shard a (another slot) are
    created there by the mover, each once: no script touches two slots."""
    client = cluster.client()
    for node in client.get_primaries():  # type: ignore[no-untyped-call]
        client.get_redis_connection(node).flushall()
    client.close()
    settings = Settings.from_environ({"REDIS_URL": cluster.url, "QUEUE_SHARDS": "emails:a"})
    home = store_on(settings)
    schedules = ScheduleStore(home.redis, settings)
    now = home.server_time_ms()
    schedules.put("tick", {"every": "1m", "job": {"type": "t", "queue": "emails"}}, now - 120_000)
    assert schedules.fire_due().fired == 1
    batches = BatchStore(home)
    report = JobSpec(type="report", queue="emails")
    batches.create([JobSpec(type="t")], sealed=True, on_complete=report)
    for job in home.claim("w1", 10, ["default"]):
        home.complete("w1", job, "{}")
    outbox = Outbox(home.redis, settings)
    assert outbox.owed() == 2
    assert outbox.move().moved == 2 and outbox.move().moved == 0
    ids = home.redis.lrange(Keys(settings.namespace, "a").queue("emails"), 0, -1)
    assert len(ids) == 2 and all(str(i).startswith("a:") for i in ids)


def test_a_dependency_across_slots_is_linked_and_settled_through_the_outbox(
    cluster: RedisCluster,
) -> None:
    """A chain over three shards (three slots): each child is linked to its parent and told of
    its end by hand-offs, and reads its parent's result from the parent's slot."""
    from workstream.common.deps import parent_results

    client = cluster.client()
    for node in client.get_primaries():  # type: ignore[no-untyped-call]
        client.get_redis_connection(node).flushall()
    client.close()
    settings = Settings.from_environ(
        {"REDIS_URL": cluster.url, "QUEUE_SHARDS": "emails:a,images:b"}
    )
    store = open_store(connect(settings, dedicated=True), settings)
    first = store.enqueue(JobSpec(type="t", queue="emails")).job_id
    second = store.enqueue(JobSpec.from_mapping({"type": "t", "depends_on": [first]})).job_id
    third = store.enqueue(
        JobSpec.from_mapping({"type": "t", "queue": "images", "depends_on": [second]})
    ).job_id
    outbox = Outbox(store.redis, settings)
    for queue, job_id in (("emails", first), ("default", second), ("images", third)):
        for _ in range(5):  # link, then settle: each mover pass performs what is due
            outbox.move()
        assert store.get_status(job_id) is JobStatus.PENDING
        shard = store.for_queue(queue)  # type: ignore[attr-defined]
        (job,) = shard.claim("w1", 1, [queue])
        assert job.id == job_id
        shard.complete("w1", job, f'"{queue}"')
    assert outbox.owed() == 0
    images = Keys(settings.namespace, "b")
    assert parent_results(store.redis, images, third) == {second: "default"}
