"""An idle worker's fetch: BLMOVE with the start script pipelined behind it, one round trip."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from tests.support.redis_server import RedisServer
from workstream.common.jobs import ClaimedJob, JobSpec
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.states import JobStatus
from workstream.common.store import JobStore


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A server of this test's own: round trips are counted server-wide, and a thread another
    test left behind (an in-process API's event reader) would add its own reads."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def fetcher_store(settings: Settings) -> Iterator[JobStore]:
    """The fetcher's store: a dedicated connection, as the worker gives it."""
    client = connect(settings, dedicated=True)
    yield JobStore(client, settings)
    client.close()


def reads_processed(client: redis.Redis) -> int:
    return int(client.info("stats")["total_reads_processed"])


def test_a_queued_job_is_moved_and_started_in_one_round_trip(
    store: JobStore, fetcher_store: JobStore, redis_client: redis.Redis
) -> None:
    assert fetcher_store.take_and_start("w1", "default", 0.01) is None  # connects, loads
    queued = store.enqueue(JobSpec(type="echo", payload={"n": 1}))
    before = reads_processed(redis_client)
    job = fetcher_store.take_and_start("w1", "default", 1.0)
    # One read event for the fetcher's pipeline, one for this INFO.
    assert reads_processed(redis_client) - before == 2
    assert job is not None and job.id == queued.job_id and job.attempt == 1 and job.lease == "1"
    assert store.get_status(queued.job_id) is JobStatus.PROCESSING
    assert redis_client.lrange(store.keys.processing("w1"), 0, -1) == [queued.job_id]


def test_a_job_enqueued_while_blocked_is_started_when_it_arrives(
    store: JobStore, fetcher_store: JobStore
) -> None:
    taken: list[ClaimedJob | None] = []
    fetch = threading.Thread(
        target=lambda: taken.append(fetcher_store.take_and_start("w1", "default", 5.0))
    )
    fetch.start()
    queued = store.enqueue(JobSpec(type="echo"))
    fetch.join(timeout=10)
    (job,) = taken
    assert job is not None and job.id == queued.job_id
    assert store.get_status(queued.job_id) is JobStatus.PROCESSING


def test_nothing_arriving_starts_nothing(store: JobStore, fetcher_store: JobStore) -> None:
    assert fetcher_store.take_and_start("w1", "default", 0.05) is None
    assert store.redis.llen(store.keys.processing("w1")) == 0


def test_a_timed_out_fetch_leaves_an_id_of_another_queue_alone(
    store: JobStore, fetcher_store: JobStore, redis_client: redis.Redis
) -> None:
    other = store.enqueue(JobSpec(type="echo", queue="other"))
    redis_client.lmove(store.keys.queue("other"), store.keys.processing("w1"), "RIGHT", "LEFT")
    assert fetcher_store.take_and_start("w1", "default", 0.05) is None
    assert store.get_status(other.job_id) is JobStatus.PENDING
    assert redis_client.lrange(store.keys.processing("w1"), 0, -1) == [other.job_id]


def test_a_running_job_at_the_head_is_not_touched(
    store: JobStore, fetcher_store: JobStore, redis_client: redis.Redis
) -> None:
    store.enqueue(JobSpec(type="echo"))
    (running,) = store.claim("w1", 1, ["default"])
    assert fetcher_store.take_and_start("w1", "default", 0.05) is None
    job = store.get_job(running.id)
    assert job is not None and job.status is JobStatus.PROCESSING and job.attempts == 1
    assert redis_client.lrange(store.keys.processing("w1"), 0, -1) == [running.id]


def test_a_paused_queue_gets_the_moved_id_back_at_its_front(
    store: JobStore, fetcher_store: JobStore, redis_client: redis.Redis
) -> None:
    first = store.enqueue(JobSpec(type="echo")).job_id
    second = store.enqueue(JobSpec(type="echo")).job_id
    store.pause("default")
    assert fetcher_store.take_and_start("w1", "default", 1.0) is None
    assert redis_client.lrange(store.keys.queue("default"), 0, -1) == [second, first]
    assert redis_client.llen(store.keys.processing("w1")) == 0


def test_the_start_script_is_reloaded_after_redis_lost_it(
    store: JobStore, fetcher_store: JobStore, redis_client: redis.Redis
) -> None:
    queued = store.enqueue(JobSpec(type="echo"))
    redis_client.script_flush()  # what a Redis restart does to the script cache
    job = fetcher_store.take_and_start("w1", "default", 1.0)
    assert job is not None and job.id == queued.job_id
    assert store.get_status(queued.job_id) is JobStatus.PROCESSING


def test_an_error_reply_to_the_move_keeps_the_connection_usable(
    store: JobStore, fetcher_store: JobStore, redis_client: redis.Redis
) -> None:
    redis_client.set(store.keys.queue("default"), "not a list")
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        fetcher_store.take_and_start("w1", "default", 0.05)
    assert fetcher_store.redis.ping() is True  # both replies were read: still in step
