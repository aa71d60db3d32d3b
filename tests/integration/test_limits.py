"""Rate and concurrency limits per queue and per group, judged by the claim scripts: a limited
job is left where it was (its queue, or its group's waiting list), never started, so it uses no
attempt; the claim says how long until a limit lifts; every way out of processing frees a slot."""

from __future__ import annotations

import threading
import time
from typing import Any

import falcon.testing
import pytest
import redis

from tests.conftest import make_settings
from tests.integration.api_fixtures import app, client  # noqa: F401  (fixtures)
from tests.support.redis_server import RedisServer
from tests.support.stack import wait_until
from workstream.common.errors import QueueFullError
from workstream.common.jobs import JobSpec
from workstream.common.keys import group_ref
from workstream.common.limits import Limits
from workstream.common.states import JobStatus
from workstream.common.store import JobStore
from workstream.worker.worker import Worker


def enqueue(store: JobStore, count: int, group: str | None = None) -> list[str]:
    return [store.enqueue(JobSpec(type="echo", group=group)).job_id for _ in range(count)]


# -- the endpoint ----------------------------------------------------------------------------


def test_limits_are_put_read_listed_and_deleted(
    client: falcon.testing.TestClient,  # noqa: F811
    store: JobStore,
) -> None:
    body = {"rate": "50/s", "concurrency": 3, "group_concurrency": 1}
    put = client.simulate_put("/queues/default/limits", json=body)
    assert put.status_code == 200 and put.json == body
    assert client.simulate_get("/queues/default/limits").json == body
    assert client.simulate_get("/queues/default").json["limits"] == body
    listed = {q["name"]: q for q in client.simulate_get("/queues").json["queues"]}
    assert listed["default"]["limits"] == body
    assert client.simulate_put("/queues/default/limits", json={"rate": "10/m"}).json == {
        "rate": "10/m",
        "concurrency": None,
        "group_concurrency": None,
    }
    assert store.limits("default") == Limits(rate="10/m")
    assert client.simulate_delete("/queues/default/limits").status_code == 204
    assert store.limits("default").empty
    assert not store.redis.exists(store.keys.limits("default"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rate": "50"}, "rate"),
        ({"rate": "0/s"}, "rate"),
        ({"rate": "5/d"}, "rate"),
        ({"rate": 50}, "rate"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": "3"}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"group_concurrency": 1.5}, "group_concurrency"),
        ({"burst": 3}, "burst"),
        ([1], "body"),
    ],
)
def test_a_bad_limit_is_a_400_naming_the_field_and_changes_nothing(
    client: falcon.testing.TestClient,  # noqa: F811
    store: JobStore,
    body: object,
    field: str,
) -> None:
    store.set_limits("default", Limits(concurrency=2))
    answer = client.simulate_put("/queues/default/limits", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json["error"]["code"] == "validation_error"
    assert field in answer.json["error"]["message"]
    assert store.limits("default") == Limits(concurrency=2)


def test_a_job_carries_its_group_and_a_bad_group_is_a_400(
    client: falcon.testing.TestClient,  # noqa: F811
    store: JobStore,
) -> None:
    made = client.simulate_post("/jobs", json={"type": "echo", "group": "customer-42"})
    assert made.status_code == 201 and made.json["group"] == "customer-42"
    assert client.simulate_get(f"/jobs/{made.json['id']}").json["group"] == "customer-42"
    assert store.redis.hget(store.keys.job(made.json["id"]), "group") == "customer-42"
    for bad in ("a:b", "", "x" * 65, 7):
        answer = client.simulate_post("/jobs", json={"type": "echo", "group": bad})
        assert answer.status_code == 400 and "group" in answer.json["error"]["message"]


def test_limits_of_an_unknown_queue_are_a_404_that_creates_nothing(
    client: falcon.testing.TestClient,  # noqa: F811
    store: JobStore,
) -> None:
    for method in ("GET", "PUT", "DELETE"):
        answer = client.simulate_request(method, "/queues/nowhere/limits", json={"rate": "1/s"})
        assert answer.status_code == 404 and answer.json["error"]["code"] == "queue_not_found"
    assert not store.redis.exists(store.keys.limits("nowhere"))
    assert client.simulate_put("/queues/bad!name/limits", json={}).status_code == 400


def test_limits_survive_in_redis_and_a_deleted_queue_forgets_them(store: JobStore) -> None:
    store.set_limits("orders", Limits(concurrency=1))
    store.enqueue(JobSpec(type="echo", queue="orders"))
    other = JobStore(store.redis, store.settings)  # a restarted process reads the same
    assert other.queue_info("orders").limits == Limits(concurrency=1)
    (job,) = store.claim("w1", 5, ["orders"])
    store.complete("w1", job, "{}")
    store.delete_queue("orders")
    assert not store.redis.exists(store.keys.limits("orders"))


# -- concurrency -----------------------------------------------------------------------------


def test_a_concurrency_cap_holds_across_workers_and_says_how_long_to_wait(
    store: JobStore,
) -> None:
    store.set_limits("default", Limits(concurrency=2))
    ids = enqueue(store, 5)
    first = store.claim("w1", 5, ["default"])
    assert [job.id for job in first] == ids[:2] and first.wait_ms > 0
    second = store.claim("w2", 5, ["default"])
    assert second == [] and second.wait_ms > 0
    codes, refill = store.complete_many("w1", [(first[0], "{}")], 5, ["default"])
    assert codes == ["ok"] and [job.id for job in refill] == [ids[2]]
    # Held jobs stay pending in their queue, their attempt unused.
    assert store.queue_info("default").pending == 2
    assert all(store.get_job(i).attempts == 0 for i in ids[3:])  # type: ignore[union-attr]


def test_an_unlimited_claim_says_nothing_about_waiting(store: JobStore) -> None:
    enqueue(store, 3)
    claimed = store.claim("w1", 5, ["default"])
    assert len(claimed) == 3 and claimed.wait_ms == 0


def test_a_limit_held_back_on_an_empty_queue_asks_for_no_wait(store: JobStore) -> None:
    store.set_limits("default", Limits(concurrency=1))
    enqueue(store, 1)
    assert len(store.claim("w1", 5, ["default"])) == 1
    assert store.claim("w2", 5, ["default"]).wait_ms == 0  # nothing is pending anyway


def test_the_blocking_path_hands_a_limited_job_back_to_the_front(store: JobStore) -> None:
    store.set_limits("default", Limits(concurrency=1))
    ids = enqueue(store, 3)
    assert len(store.claim("w1", 1, ["default"])) == 1
    held = store.take_and_start_limited("w2", "default", 0.1)
    assert held == [] and held.wait_ms > 0
    assert store.redis.llen(store.keys.processing("w2")) == 0
    assert store.redis.lrange(store.keys.queue("default"), 0, -1) == [ids[2], ids[1]]


def test_every_way_out_of_processing_frees_a_concurrency_slot(
    store: JobStore, redis_client: redis.Redis
) -> None:
    store.set_limits("default", Limits(concurrency=1))
    enqueue(store, 6)

    def one(worker: str) -> list:  # type: ignore[type-arg]
        claimed = store.claim(worker, 5, ["default"])
        assert len(claimed) == 1, "the slot was not freed"
        assert store.claim("other", 5, ["default"]) == []
        return claimed

    job = one("w1")[0]
    store.complete("w1", job, "{}")
    job = one("w1")[0]
    store.fail("w1", job, "boom", permanent=True)
    one("w1")
    store.release("w1")  # shutdown
    one("w2")
    store.recover("w2")  # a dead worker
    job = one("w3")[0]
    redis_client.zadd(store.keys.deadlines, {job.id: 0})
    assert store.reclaim(margin_ms=0) == 1  # overdue, or an HTTP lease expired
    one("w4")


# -- rate ------------------------------------------------------------------------------------


def test_a_rate_spaces_starts_and_says_when_the_next_may_start(store: JobStore) -> None:
    store.set_limits("default", Limits(rate="10/s"))
    enqueue(store, 5)
    first = store.claim("w1", 5, ["default"])
    assert len(first) == 1 and 50 <= first.wait_ms <= 100
    held = store.claim("w2", 5, ["default"])
    assert held == [] and 50 <= held.wait_ms <= 100
    assert store.queue_info("default").pending == 4


def test_a_high_rate_lets_one_claim_take_a_few(store: JobStore) -> None:
    store.set_limits("default", Limits(rate="1000/s"))
    enqueue(store, 50)
    claimed = store.claim("w1", 50, ["default"])
    assert 1 < len(claimed) <= 12 and claimed.wait_ms >= 1


# -- groups ----------------------------------------------------------------------------------


def test_a_group_at_its_cap_is_parked_and_other_groups_pass(store: JobStore) -> None:
    store.set_limits("default", Limits(group_concurrency=1))
    a1, a2, a3 = enqueue(store, 3, group="a")
    (b1,) = enqueue(store, 1, group="b")
    claimed = store.claim("w1", 10, ["default"])
    assert [job.id for job in claimed] == [a1, b1]
    assert store.redis.lrange(store.keys.waiting(group_ref("default", "a")), 0, -1) == [a3, a2]
    # Running jobs per group, and the parked ones (they count toward the queue's capacity).
    assert store.redis.hgetall(store.keys.groups("default")) == {"a": "1", "b": "1", ":parked": "2"}
    assert store.get_job(a2).attempts == 0  # type: ignore[union-attr]
    assert store.queue_info("default").parked == 2
    # a1 finishing releases the oldest parked job of its group, which the same call claims.
    codes, refill = store.complete_many("w1", [(claimed[0], "{}")], 10, ["default"])
    assert codes == ["ok"] and [job.id for job in refill] == [a2]
    assert store.get_job(a2).attempts == 1  # type: ignore[union-attr]


def test_a_group_slot_is_freed_by_a_failure_and_by_recovery(store: JobStore) -> None:
    store.set_limits("default", Limits(group_concurrency=1))
    enqueue(store, 3, group="a")
    (first,) = store.claim("w1", 10, ["default"])
    store.fail("w1", first, "boom", permanent=True)
    assert len(store.claim("w1", 10, ["default"])) == 1
    store.recover("w1")  # second goes back (suspect), the third stays parked
    assert store.redis.hget(store.keys.groups("default"), "a") is None
    assert len(store.claim("w2", 10, ["default"])) == 1


def test_once_the_group_cap_is_removed_parked_jobs_follow_one_another_out(
    store: JobStore,
) -> None:
    store.set_limits("default", Limits(group_concurrency=1))
    ids = enqueue(store, 4, group="a")
    (running,) = store.claim("w1", 10, ["default"])
    store.set_limits("default", Limits())
    # The next job of the group to end releases one; each that starts below the cap (none
    # now) releases the next, so one claim takes them all.
    _, more = store.complete_many("w1", [(running, "{}")], 10, ["default"])
    assert sorted(job.id for job in more) == sorted(ids[1:])


def test_a_cancelled_parked_job_is_skipped_when_its_group_frees(store: JobStore) -> None:
    store.set_limits("default", Limits(group_concurrency=1))
    _, a2, a3 = enqueue(store, 3, group="a")
    (running,) = store.claim("w1", 10, ["default"])
    store.cancel(a2)
    store.complete("w1", running, "{}")
    (nxt,) = store.claim("w1", 10, ["default"])
    assert nxt.id == a3
    assert store.get_status(a2) is JobStatus.CANCELLED


# -- the fetcher -----------------------------------------------------------------------------


def test_a_worker_of_two_queues_is_not_held_up_long_by_one_queues_rate(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = make_settings(
        redis_server.url, QUEUES="slow,fast", WORKER_HANDLERS="tests.handlers", WORKER_COUNT="2"
    )
    store = JobStore(redis_client, settings)
    worker = Worker(settings, store)
    store.set_limits("slow", Limits(rate="1/h"))
    slow = [store.enqueue(JobSpec(type="echo", queue="slow")).job_id for _ in range(3)]
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: store.get_status(slow[0]) is JobStatus.COMPLETED, 10)
        time.sleep(0.3)  # the fetcher now sleeps on the slow queue's rate
        fast = store.enqueue(JobSpec(type="echo", queue="fast")).job_id
        started = time.monotonic()
        assert wait_until(lambda: store.get_status(fast) is JobStatus.COMPLETED, 5)
        assert time.monotonic() - started < 0.6
        assert store.get_status(slow[1]) is JobStatus.PENDING  # still held, no attempt used
        assert store.get_job(slow[1]).attempts == 0  # type: ignore[union-attr]
    finally:
        worker.shutdown_requested.set()
        thread.join(15)


def test_http_consumers_lease_within_the_limits_and_their_answers_free_the_slot(
    client: falcon.testing.TestClient,  # noqa: F811
    store: JobStore,
    redis_client: redis.Redis,
) -> None:
    store.set_limits("default", Limits(concurrency=1))
    enqueue(store, 3)

    def lease(consumer: str) -> list[dict[str, Any]]:
        body = {"queues": ["default"], "consumer": consumer, "count": 5}
        answer = client.simulate_post("/leases", json=body)
        assert answer.status_code == 200, answer.json
        leases: list[dict[str, Any]] = answer.json["leases"]
        return leases

    (first,) = lease("c1")
    assert lease("c2") == []
    job = first["job"]
    done = client.simulate_post(
        f"/jobs/{job['id']}/complete", json={"lease": first["lease"], "result": None}
    )
    assert done.status_code == 200, done.json
    (second,) = lease("c2")
    redis_client.zadd(store.keys.deadlines, {second["job"]["id"]: 0})
    assert store.reclaim(margin_ms=0) == 1  # its lease ran out
    assert len(lease("c3")) == 1


def test_parked_jobs_count_toward_the_queues_capacity(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_server.url, JOB_QUEUE_CAPACITY="3")
    store = JobStore(redis_client, settings)
    store.set_limits("default", Limits(group_concurrency=1))
    enqueue(store, 3, group="a")
    assert len(store.claim("w1", 10, ["default"])) == 1  # two parked, none left in the list
    assert store.redis.llen(store.keys.queue("default")) == 0
    enqueue(store, 1)  # one running, two parked, one queued: 3 pending
    with pytest.raises(QueueFullError):
        enqueue(store, 1)


def test_a_cancelled_parked_job_never_strands_the_live_ones_behind_it(store: JobStore) -> None:
    store.set_limits("default", Limits(group_concurrency=1))
    _, a2, a3, a4 = enqueue(store, 4, group="a")
    (running,) = store.claim("w1", 10, ["default"])
    store.cancel(a3)
    store.set_limits("default", Limits())
    # a1 ending lets a2 out; a2 starting (no cap now) lets the next live one out, past a3.
    _, more = store.complete_many("w1", [(running, "{}")], 10, ["default"])
    assert sorted(job.id for job in more) == sorted([a2, a4])
    assert store.queue_info("default").parked == 0
