"""Priority within a queue: levels 1-9 in the queue's priority ZSET are claimed before the list
(priority 0), highest first and FIFO within a level, on every path that takes or gives back a
job; a WAKE pushed onto an empty list wakes a blocked worker and is never taken for a job."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import falcon.testing
import pytest
import redis

from tests.conftest import make_settings
from tests.integration.api_fixtures import app, client  # noqa: F401  (fixtures)
from tests.support.redis_server import RedisServer
from workstream.common.errors import QueueFullError
from workstream.common.jobs import ClaimedJob, JobSpec
from workstream.common.keys import WAKE
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.states import JobStatus
from workstream.common.store import JobStore


@pytest.fixture
def fetcher_store(settings: Settings) -> Iterator[JobStore]:
    dedicated = connect(settings, dedicated=True)
    yield JobStore(dedicated, settings)
    dedicated.close()


def submit(store: JobStore, name: str, priority: int = 0, queue: str = "default") -> str:
    spec = JobSpec(type="echo", payload={"name": name}, queue=queue, priority=priority)
    return store.enqueue(spec).job_id


def claim_names(store: JobStore, count: int, worker: str = "w1") -> list[str]:
    claimed = store.claim(worker, count, ["default"])
    return [job_name(job) for job in claimed]


def job_name(job: ClaimedJob) -> str:
    return str(job.payload_json.split('"')[3])


def test_higher_levels_are_claimed_first_and_fifo_within_a_level(store: JobStore) -> None:
    for name, priority in [("a0", 0), ("b3", 3), ("c9", 9), ("d3", 3), ("e0", 0), ("f9", 9)]:
        submit(store, name, priority)
    assert claim_names(store, 10) == ["c9", "f9", "b3", "d3", "a0", "e0"]


def test_a_claim_of_one_takes_the_highest_level_each_time(store: JobStore) -> None:
    for name, priority in [("low", 1), ("none", 0), ("high", 5)]:
        submit(store, name, priority)
    assert [claim_names(store, 1)[0] for _ in range(3)] == ["high", "low", "none"]


def test_a_job_without_priority_keeps_its_list_and_writes_no_priority_key(
    store: JobStore, redis_client: redis.Redis
) -> None:
    job_id = submit(store, "plain")
    assert redis_client.lrange(store.keys.queue("default"), 0, -1) == [job_id]
    assert not redis_client.exists(store.keys.priority("default"))
    assert redis_client.hget(store.keys.job(job_id), "priority") is None


def test_the_job_shows_its_priority(store: JobStore) -> None:
    job_id = submit(store, "p", 7)
    job = store.get_job(job_id)
    assert job is not None and job.priority == 7 and job.to_json()["priority"] == 7
    plain = store.get_job(submit(store, "q"))
    assert plain is not None and plain.to_json()["priority"] == 0


def test_a_wake_is_pushed_only_onto_an_empty_list_and_is_not_counted(
    store: JobStore, redis_client: redis.Redis
) -> None:
    submit(store, "p1", 4)
    submit(store, "p2", 4)
    assert redis_client.lrange(store.keys.queue("default"), 0, -1) == [WAKE]
    submit(store, "plain")
    assert redis_client.lrange(store.keys.queue("default"), 0, -1)[-1] == WAKE
    assert store.queue_info("default").pending == 3
    assert claim_names(store, 10) == ["p1", "p2", "plain"]
    assert redis_client.llen(store.keys.queue("default")) == 0
    assert store.queue_info("default").pending == 0


def test_the_wake_goes_once_the_priority_set_is_empty(
    store: JobStore, redis_client: redis.Redis
) -> None:
    submit(store, "p", 2)
    assert claim_names(store, 1) == ["p"]
    assert redis_client.llen(store.keys.queue("default")) == 0


def test_capacity_counts_prioritized_jobs_and_not_the_wake(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    store = JobStore(redis_client, make_settings(redis_server.url, JOB_QUEUE_CAPACITY="2"))
    submit(store, "p", 3)
    submit(store, "q", 0)  # the WAKE beside the prioritized job takes no room
    with pytest.raises(QueueFullError):
        submit(store, "r", 5)
    assert store.queue_info("default").pending == 2


def test_a_blocked_worker_wakes_for_a_prioritized_job_at_once(
    store: JobStore, fetcher_store: JobStore
) -> None:
    fetcher_store.take_and_start("w1", "default", 0.01)  # connects and loads the scripts
    taken: list[tuple[ClaimedJob | None, float]] = []

    def fetch() -> None:
        job = fetcher_store.take_and_start("w1", "default", 5.0)
        taken.append((job, time.monotonic()))

    thread = threading.Thread(target=fetch)
    thread.start()
    time.sleep(0.2)  # blocked in BLMOVE on the empty list by now
    sent_at = time.monotonic()
    job_id = submit(store, "urgent", 6)
    thread.join(timeout=10)
    ((job, at),) = taken
    assert job is not None and job.id == job_id
    assert at - sent_at < 0.5  # the block is 5 s: only the WAKE ended it
    assert store.get_status(job_id) is JobStatus.PROCESSING


def test_each_blocked_worker_wakes_while_prioritized_jobs_wait(
    settings: Settings, store: JobStore
) -> None:
    fetchers = [JobStore(connect(settings, dedicated=True), settings) for _ in range(2)]
    taken: list[tuple[ClaimedJob | None, float]] = []

    def fetch(fetcher: JobStore, worker: str) -> None:
        job = fetcher.take_and_start(worker, "default", 5.0)
        taken.append((job, time.monotonic()))

    for fetcher in fetchers:
        fetcher.take_and_start("w0", "default", 0.01)  # connects and loads the scripts
    threads = [
        threading.Thread(target=fetch, args=(fetcher, f"w{i}"))
        for i, fetcher in enumerate(fetchers)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # both blocked in BLMOVE on the empty list by now
    sent_at = time.monotonic()
    ids = {submit(store, "one", 3), submit(store, "two", 3)}  # one WAKE: the first passes it on
    for thread in threads:
        thread.join(timeout=10)
    assert {job.id for job, _ in taken if job is not None} == ids
    assert all(at - sent_at < 0.5 for _, at in taken)
    for fetcher in fetchers:
        fetcher.redis.close()


def test_blmove_taking_a_list_job_starts_a_waiting_prioritized_one_instead(
    store: JobStore, fetcher_store: JobStore, redis_client: redis.Redis
) -> None:
    plain = submit(store, "plain")
    urgent = submit(store, "urgent", 1)
    job = fetcher_store.take_and_start("w1", "default", 1.0)
    assert job is not None and job.id == urgent
    assert redis_client.lrange(store.keys.queue("default"), 0, -1) == [plain]
    assert redis_client.lrange(store.keys.processing("w1"), 0, -1) == [urgent]


def test_a_wake_alone_starts_nothing_and_leaves_nothing(
    store: JobStore, fetcher_store: JobStore, redis_client: redis.Redis
) -> None:
    job_id = submit(store, "p", 2)
    store.cancel(job_id)  # the WAKE stays behind, its job gone
    assert store.queue_info("default").pending == 0
    assert fetcher_store.take_and_start("w1", "default", 0.5) is None
    assert redis_client.llen(store.keys.queue("default")) == 0
    assert redis_client.llen(store.keys.processing("w1")) == 0


def test_a_wake_left_by_a_lost_reply_goes_back_when_the_worker_releases(
    store: JobStore, redis_client: redis.Redis
) -> None:
    store.heartbeat("w1", "host", 1, ["default"], 1, 0)  # its hash names its queues
    job_id = submit(store, "p", 4)
    assert store.take_blocking("w1", "default", 0.1) == WAKE  # and no start behind it
    assert redis_client.llen(store.keys.queue("default")) == 0
    store.release("w1", keep=[])
    assert redis_client.lrange(store.keys.queue("default"), 0, -1) == [WAKE]
    assert redis_client.llen(store.keys.processing("w1")) == 0
    assert [job.id for job in store.claim("w2", 1, ["default"])] == [job_id]


def test_a_released_job_goes_back_to_the_front_of_its_level(
    store: JobStore, redis_client: redis.Redis
) -> None:
    submit(store, "first", 5)
    submit(store, "second", 5)
    assert claim_names(store, 1) == ["first"]
    store.release("w1")
    assert claim_names(store, 10, worker="w2") == ["first", "second"]


def test_a_dead_workers_jobs_come_back_with_their_priority(
    store: JobStore, redis_client: redis.Redis
) -> None:
    for name, priority in [("a", 2), ("b", 8), ("c", 0)]:
        submit(store, name, priority)
    assert sorted(claim_names(store, 3)) == ["a", "b", "c"]
    submit(store, "later8", 8)
    submit(store, "later0", 0)
    assert store.recover("w1") == (3, 0)
    # Recovered jobs go first within their level; each keeps its level.
    names = []
    for _ in range(5):
        claimed = store.claim("w2", 1, ["default"])
        names.append(job_name(claimed[0]))
        store.complete("w2", claimed[0], "null")
    assert names == ["b", "later8", "a", "c", "later0"]


def test_a_cancelled_prioritized_job_leaves_the_priority_set(
    store: JobStore, redis_client: redis.Redis
) -> None:
    job_id = submit(store, "p", 3)
    store.cancel(job_id)
    assert not redis_client.exists(store.keys.priority("default"))
    assert claim_names(store, 5) == []


def test_a_retried_job_keeps_its_priority(store: JobStore, redis_client: redis.Redis) -> None:
    job_id = store.enqueue(JobSpec(type="echo", priority=4, max_attempts=2)).job_id
    (job,) = store.claim("w1", 1, ["default"])
    assert store.fail("w1", job, "boom", permanent=False) is JobStatus.PENDING  # RETRY_BACKOFF=0s
    submit(store, "plain")
    assert redis_client.zrange(store.keys.priority("default"), 0, -1) == [job_id]
    assert [job.id for job in store.claim("w1", 1, ["default"])] == [job_id]


def test_a_delayed_prioritized_job_is_promoted_into_its_level(
    store: JobStore, redis_client: redis.Redis
) -> None:
    job_id = store.enqueue(JobSpec(type="echo", priority=9, delay=0.001)).job_id
    submit(store, "plain")
    time.sleep(0.01)
    assert store.promote()[0] == 1
    assert [job.id for job in store.claim("w1", 1, ["default"])] == [job_id]


def test_a_queue_holding_only_prioritized_jobs_is_not_deleted_and_an_empty_one_leaves_nothing(
    store: JobStore, redis_client: redis.Redis
) -> None:
    job_id = submit(store, "p", 3, queue="side")
    with pytest.raises(Exception, match="pending"):
        store.delete_queue("side")
    store.cancel(job_id)
    store.delete(job_id)
    store.delete_queue("side")  # only the WAKE was left: no job
    assert not redis_client.exists(store.keys.queue("side"), store.keys.priority("side"))


def test_a_paused_queue_keeps_its_prioritized_job(
    store: JobStore, fetcher_store: JobStore, redis_client: redis.Redis
) -> None:
    job_id = submit(store, "p", 3)
    store.pause("default")
    assert store.claim("w1", 5, ["default"]) == []
    assert fetcher_store.start("w1", WAKE, "default") is None
    store.resume("default")
    assert [job.id for job in store.claim("w1", 5, ["default"])] == [job_id]


def test_a_suspect_prioritized_job_put_back_keeps_its_place(
    store: JobStore, redis_client: redis.Redis
) -> None:
    submit(store, "a", 6)
    submit(store, "b", 6)
    store.claim("w1", 2, ["default"])
    store.recover("w1")  # both suspect: each must run alone
    submit(store, "c", 6)
    (first,) = store.claim("w2", 3, ["default"], idle=True)
    assert job_name(first) == "a"
    # Not idle: the suspect at the head stops the claim and stays at the head of its level.
    assert store.claim("w3", 3, ["default"], idle=False) == []
    assert redis_client.zrange(store.keys.priority("default"), 0, 0)[0] != first.id
    store.complete("w2", first, "null")
    (second,) = store.claim("w2", 3, ["default"], idle=True)
    assert job_name(second) == "b"


# -- over HTTP -------------------------------------------------------------------------------


def test_post_jobs_takes_a_priority_and_shows_it(
    client: falcon.testing.TestClient,  # noqa: F811
    store: JobStore,
) -> None:
    plain = client.simulate_post("/jobs", json={"type": "echo"})
    made = client.simulate_post("/jobs", json={"type": "echo", "priority": 9})
    assert made.status_code == 201 and made.json["priority"] == 9
    assert client.simulate_get(f"/jobs/{made.json['id']}").json["priority"] == 9
    assert plain.json["priority"] == 0
    assert [job.id for job in store.claim("w1", 1, ["default"])] == [made.json["id"]]


def test_a_batch_takes_priorities_in_order(
    client: falcon.testing.TestClient,  # noqa: F811
    store: JobStore,
) -> None:
    jobs = [{"type": "echo", "payload": {"name": str(p)}, "priority": p} for p in (0, 2, 9, 2)]
    answer = client.simulate_post("/jobs/batch", json={"jobs": jobs})
    assert answer.status_code == 201
    ids = [job["id"] for job in answer.json["jobs"]]
    assert [job.id for job in store.claim("w1", 4, ["default"])] == [ids[2], ids[1], ids[3], ids[0]]


@pytest.mark.parametrize("bad", [-1, 10, 1.5, "3", True, [1], {"p": 1}, 10**30])
def test_a_bad_priority_is_a_400_that_writes_nothing(
    client: falcon.testing.TestClient,  # noqa: F811
    redis_client: redis.Redis,
    bad: object,
) -> None:
    answer = client.simulate_post("/jobs", json={"type": "echo", "priority": bad})
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "validation_error"
    assert answer.json["error"]["field"] == "priority"
    batch = [{"type": "echo", "priority": 5}, {"type": "echo", "priority": bad}]
    answer = client.simulate_post("/jobs/batch", json={"jobs": batch})
    assert answer.status_code == 400 and answer.json["error"]["field"] == "jobs[1].priority"
    assert [key for key in redis_client.keys() if ":timeline:" not in key] == []


def test_an_explicit_priority_0_is_the_plain_order(
    client: falcon.testing.TestClient,  # noqa: F811
    store: JobStore,
    redis_client: redis.Redis,
) -> None:
    made = client.simulate_post("/jobs", json={"type": "echo", "priority": 0})
    assert made.status_code == 201 and made.json["priority"] == 0
    assert redis_client.lrange(store.keys.queue("default"), 0, -1) == [made.json["id"]]
