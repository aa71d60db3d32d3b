"""REDIS_URL=redis+cluster:// with QUEUE_SHARDS: real workstream-api and workstream-worker
processes on a real three-master cluster, one queue per shard, each shard on its own master."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import RedisCluster
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, wait_until

from .conftest import REPO

# Hash tags {default/a}, {default/b}, {default/c} fall in slots 12269, 8078, 4015: one master
# each (checked below, not assumed).
SHARDS = {"emails": "a", "images": "b", "reports": "c"}
QUEUE_SHARDS = ",".join(f"{queue}:{shard}" for queue, shard in SHARDS.items())


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    started = RedisCluster.start()
    yield started
    started.stop()


@pytest.fixture
def stack(cluster: RedisCluster, request: pytest.FixtureRequest) -> Iterator[Stack]:
    client = cluster.client()
    for node in client.get_primaries():  # type: ignore[no-untyped-call]
        client.get_redis_connection(node).flushall()
    client.close()
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:80]
    live = Stack(
        cluster.url,
        REPO / "test-output" / "e2e" / name,
        env={"QUEUE_SHARDS": QUEUE_SHARDS, "LOG_LEVEL": "info", "WORKER_COUNT": "4"},
    )
    yield live
    live.stop_all()


def test_each_shard_lives_on_its_own_master(cluster: RedisCluster) -> None:
    masters = {cluster.master_of(f"ws:{{default/{shard}}}:jobs").port for shard in "abc"}
    assert len(masters) == 3


def test_jobs_on_three_queues_in_three_shards_all_complete_and_the_views_add_them_up(
    cluster: RedisCluster, stack: Stack
) -> None:
    api = stack.start_api()
    for queue in SHARDS:
        stack.start_worker({"QUEUES": queue})
    ids: dict[str, list[str]] = {queue: [] for queue in SHARDS}
    for queue in SHARDS:
        for n in range(10):
            status, reply, _ = api.request(
                "POST", "/jobs", {"type": "echo", "queue": queue, "payload": {"n": n}}
            )
            assert status == 201, reply
            ids[queue].append(reply["id"])
    assert all(i.startswith(f"{SHARDS[q]}:") for q, found in ids.items() for i in found)

    def all_completed() -> bool:
        for found in ids.values():
            for job_id in found:
                status, reply, _ = api.request("GET", f"/jobs/{job_id}")
                if status != 200 or reply["status"] != "completed":
                    return False
        return True

    assert wait_until(all_completed, 30, 0.2), [w.log()[-1500:] for w in stack.workers()]
    # Each shard's job keys are on that shard's master.
    for queue, found in ids.items():
        owner = cluster.master_of(f"ws:{{default/{SHARDS[queue]}}}:jobs")
        assert owner.client().exists(f"ws:{{default/{SHARDS[queue]}}}:job:{found[0]}")
    status, queues, _ = api.request("GET", "/queues")
    assert status == 200
    by_name = (
        {q["name"]: q for q in queues["queues"]}
        if isinstance(queues, dict)
        else {q["name"]: q for q in queues}
    )
    assert {"emails", "images", "reports"} <= set(by_name)
    assert all(by_name[q]["workers"] == 1 for q in SHARDS)
    status, text, _ = api.request("GET", "/metrics", headers={"Accept": "text/plain"})
    assert status == 200
    completed = {
        q: sum(
            float(line.rsplit(" ", 1)[1])
            for line in str(text).splitlines()
            if line.startswith("workstream_jobs_completed_total") and f'queue="{q}"' in line
        )
        for q in SHARDS
    }
    assert completed == dict.fromkeys(SHARDS, 10.0), completed
    status, workers, _ = api.request("GET", "/workers")
    assert status == 200
    listed = workers["workers"] if isinstance(workers, dict) else workers
    assert sorted(q for w in listed for q in w["queues"]) == sorted(SHARDS)
    status, page, _ = api.request("GET", "/jobs?limit=100")
    assert status == 200
    assert sorted(j["id"] for j in page["jobs"]) == sorted(i for f in ids.values() for i in f)
    status, page, _ = api.request("GET", "/jobs?limit=7")
    seen = [j["id"] for j in page["jobs"]]
    while page["next_cursor"]:
        status, page, _ = api.request("GET", f"/jobs?limit=7&cursor={page['next_cursor']}")
        seen += [j["id"] for j in page["jobs"]]
    assert sorted(seen) == sorted(i for f in ids.values() for i in f)  # each once


def test_a_worker_whose_queues_span_shards_exits_2_naming_them(tmp_path: Path) -> None:
    server = RedisServer().start()
    try:
        stack = Stack(server.url, tmp_path, env={"QUEUE_SHARDS": "emails:a"})
        worker = stack.start_worker({"QUEUES": "emails,other"})
        assert worker.wait(20) == 2
        assert "serves the queues of one shard" in worker.log()
        assert "emails in a" in worker.log() and "other in the default shard" in worker.log()
    finally:
        server.stop()


def test_api_and_worker_refuse_to_start_while_a_moved_queue_holds_jobs(tmp_path: Path) -> None:
    """The upgrade path's guard: a job submitted before `emails` was moved to shard a keeps
    both processes from starting until it is drained."""
    server = RedisServer().start()
    try:
        server.client().rpush("ws:{default}:queue:emails", "0" * 32)  # as enqueue leaves it
        server.client().sadd("ws:{default}:queues", "emails")
        after = Stack(server.url, tmp_path / "after", env={"QUEUE_SHARDS": "emails:a"})
        worker = after.start_worker({"QUEUES": "emails"})
        assert worker.wait(20) == 2
        assert "holds 1 job(s) in the default shard" in worker.log()
        with pytest.raises(RuntimeError, match="misplaced_jobs"):
            after.start_api()
        after.stop_all()
    finally:
        server.stop()


def test_a_schedule_and_a_batch_callback_reach_named_shards_through_the_outbox(
    cluster: RedisCluster, stack: Stack
) -> None:
    """Schedules and batches live in the default shard; a schedule's runs for emails (shard a)
    and a batch's callback for reports (shard c) are handed off there by the movers of the API
    and the workers, with the emails worker SIGKILLed half-way: every run the schedule counts
    is one job in shard a, each completed; the callback completes once in shard c."""
    api = stack.start_api()
    stack.start_worker({"QUEUES": "default"})
    emails = stack.start_worker({"QUEUES": "emails"})
    stack.start_worker({"QUEUES": "reports"})
    tick = {"every": "1s", "job": {"type": "echo", "queue": "emails"}}
    assert api.request("PUT", "/schedules/tick", tick)[0] in (200, 201)
    body = {
        "jobs": [{"type": "echo", "payload": {"n": n}} for n in range(5)],
        "on_complete": {"type": "echo", "queue": "reports"},
    }
    status, batch, _ = api.request("POST", "/batches", body)
    assert status == 201, batch
    callback_id = batch["on_complete"]["job_id"]
    assert callback_id.startswith("c:")
    assert wait_until(lambda: api.request("GET", "/schedules/tick")[1]["runs"] >= 2, 20, 0.2)
    emails.signal(9)
    emails.wait(10)
    stack.start_worker({"QUEUES": "emails"})
    assert wait_until(lambda: api.request("GET", "/schedules/tick")[1]["runs"] >= 4, 20, 0.2)
    assert api.request("POST", "/schedules/tick/pause")[0] == 200
    runs = api.request("GET", "/schedules/tick")[1]["runs"]

    def done() -> bool:
        page = api.request("GET", "/jobs?queue=emails&limit=100")[1]
        finished = [j for j in page["jobs"] if j["status"] == "completed"]
        callback = api.request("GET", f"/jobs/{callback_id}")[1]
        return len(finished) >= runs and bool(callback.get("status") == "completed")

    assert wait_until(done, 30, 0.2), [w.log()[-1500:] for w in stack.workers()]
    page = api.request("GET", "/jobs?queue=emails&limit=100")[1]
    ids = [j["id"] for j in page["jobs"]]
    assert len(ids) == len(set(ids)) == runs and all(i.startswith("a:") for i in ids)
    owner = cluster.master_of("ws:{default/a}:stats")
    assert owner.client().hget("ws:{default/a}:stats", "created|emails|echo") == str(runs)
    reports = cluster.master_of("ws:{default/c}:stats").client()
    assert reports.hget("ws:{default/c}:stats", "created|reports|echo") == "1"
