"""A Worker run in-process in drain mode (run(until_idle=True)) against a real Redis."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import make_settings
from tests.support.faults import keep_busy
from tests.support.redis_server import RedisServer
from workstream.common.jobs import JobSpec
from workstream.common.states import JobStatus
from workstream.common.store import JobStore
from workstream.worker.worker import Worker


def _worker(server: RedisServer, client: redis.Redis, **env: str) -> tuple[Worker, JobStore]:
    settings = make_settings(
        server.url, WORKER_HANDLERS="tests.handlers", RETRY_BACKOFF="0s", LOG_LEVEL="debug", **env
    )
    store = JobStore(client, settings)
    return Worker(settings, store), store


def _drain(worker: Worker, timeout_s: float = 30) -> None:
    done = threading.Event()

    def run() -> None:
        worker.run(until_idle=True)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    if not done.wait(timeout_s):
        worker.shutdown_requested.set()
        done.wait(10)
        raise AssertionError("worker did not drain in time")


def test_an_echo_job_completes_with_its_payload_as_result(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    worker, store = _worker(redis_server, redis_client)
    result = store.enqueue(JobSpec(type="echo", payload={"hello": "world"}))
    _drain(worker)
    job = store.get_job(result.job_id)
    assert job is not None and job.status is JobStatus.COMPLETED
    assert job.result == {"hello": "world"} and job.attempts == 1


def test_a_flaky_job_retries_then_succeeds(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    worker, store = _worker(redis_server, redis_client)
    result = store.enqueue(JobSpec(type="fail", payload={"times": 2}, max_attempts=3))
    _drain(worker)
    job = store.get_job(result.job_id)
    assert job is not None and job.status is JobStatus.COMPLETED
    assert job.result == {"succeeded_on_attempt": 3}
    assert store.stats()["retried|default|fail"] == 2


def test_a_job_failing_every_attempt_is_dead_lettered(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    worker, store = _worker(redis_server, redis_client, MAX_ATTEMPTS="3")
    result = store.enqueue(JobSpec(type="fail"))
    _drain(worker)
    job = store.get_job(result.job_id)
    assert job is not None and job.status is JobStatus.FAILED and job.attempts == 3
    assert "RuntimeError" in (job.error or "")
    assert store.failed_ids("default", 10) == [result.job_id]


def test_a_permanent_error_fails_without_retry(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    worker, store = _worker(redis_server, redis_client)
    result = store.enqueue(JobSpec(type="fail", payload={"permanent": True}, max_attempts=5))
    _drain(worker)
    job = store.get_job(result.job_id)
    assert job is not None and job.status is JobStatus.FAILED and job.attempts == 1


def test_an_unknown_type_is_retried_like_any_error_then_fails_with_a_clear_error(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    """A rolling deploy: the worker that handles it may not be up yet."""
    worker, store = _worker(redis_server, redis_client)
    result = store.enqueue(JobSpec(type="no_such_handler", max_attempts=5))
    _drain(worker)
    job = store.get_job(result.job_id)
    assert job is not None and job.status is JobStatus.FAILED and job.attempts == 5
    assert job.error == "no handler registered for type 'no_such_handler'"
    assert store.stats()["retried|default|no_such_handler"] == 4


def test_a_job_past_its_timeout_is_stopped_and_the_worker_stays_healthy(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    worker, store = _worker(redis_server, redis_client, WORKER_COUNT="1")
    slow = store.enqueue(
        JobSpec(type="sleep", payload={"seconds": 30}, timeout=0.3, max_attempts=1)
    )
    after = store.enqueue(JobSpec(type="echo", payload=1))
    started = time.monotonic()
    _drain(worker)
    assert time.monotonic() - started < 10
    timed_out = store.get_job(slow.job_id)
    assert timed_out is not None and timed_out.status is JobStatus.FAILED
    assert timed_out.error == "timed out after 0.3s"
    assert store.get_status(after.job_id) is JobStatus.COMPLETED


def test_a_handler_stuck_in_c_code_is_abandoned_and_its_slot_replaced(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    worker, store = _worker(redis_server, redis_client, WORKER_COUNT="1")
    stuck = store.enqueue(
        JobSpec(type="block_in_c", payload={"seconds": 6}, timeout=0.2, max_attempts=1)
    )
    after = store.enqueue(JobSpec(type="echo", payload=2))
    _drain(worker)
    job = store.get_job(stuck.job_id)
    assert job is not None and job.status is JobStatus.FAILED
    assert store.get_status(after.job_id) is JobStatus.COMPLETED
    assert worker.pool.abandoned_threads == 1


def test_queues_are_served_in_strict_priority_order(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    worker, store = _worker(redis_server, redis_client, WORKER_COUNT="1", QUEUES="high,low")
    for tag in range(3):
        store.enqueue(JobSpec(type="record_order", payload={"tag": f"low{tag}"}, queue="low"))
    for tag in range(3):
        store.enqueue(JobSpec(type="record_order", payload={"tag": f"high{tag}"}, queue="high"))
    _drain(worker)
    order = redis_client.lrange("test:order", 0, -1)
    assert order == ["high0", "high1", "high2", "low0", "low1", "low2"]


def test_a_delayed_job_runs_no_earlier_than_due(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    worker, store = _worker(redis_server, redis_client)
    result = store.enqueue(JobSpec(type="echo", delay=0.5))
    _drain(worker)
    job = store.get_job(result.job_id)
    assert job is not None and job.status is JobStatus.COMPLETED
    assert job.started_at is not None and job.created_at is not None
    assert job.started_at - job.created_at >= 500


def test_heartbeats_keep_flowing_while_a_handler_burns_cpu(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    worker, store = _worker(redis_server, redis_client, WORKER_TTL="300ms", WORKER_COUNT="2")
    store.enqueue(JobSpec(type="burn_cpu", payload={"seconds": 1.5}))
    beats: list[float] = []

    def sample() -> None:
        deadline = time.monotonic() + 1.4
        while time.monotonic() < deadline:
            score = redis_client.zscore(store.keys.workers, worker.worker_id)
            if score is not None and (not beats or beats[-1] != score):
                beats.append(score)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _drain(worker)
    sampler.join()
    assert len(beats) >= 8  # one every ~100 ms for 1.4 s despite the busy handler
    assert max(b - a for a, b in itertools.pairwise(beats)) < 300


def test_shutdown_releases_unstarted_claims_and_deregisters(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    worker, store = _worker(redis_server, redis_client, SHUTDOWN_GRACE="100ms", WORKER_COUNT="1")
    long = store.enqueue(JobSpec(type="sleep", payload={"seconds": 5}))
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert _eventually(lambda: store.get_status(long.job_id) is JobStatus.PROCESSING)
    worker.shutdown_requested.set()
    thread.join(15)
    job = store.get_job(long.job_id)
    assert job is not None and job.status is JobStatus.PENDING and job.attempts == 0
    assert redis_client.zscore(store.keys.workers, worker.worker_id) is None
    assert redis_client.exists(store.keys.processing(worker.worker_id)) == 0


def _eventually(check: object, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_a_long_job_on_an_idle_worker_does_not_hold_up_the_next_one(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    worker, store = _worker(redis_server, redis_client, WORKER_COUNT="2")
    slow = store.enqueue(JobSpec(type="sleep", payload={"seconds": 3})).job_id
    runner = threading.Thread(target=worker.run, kwargs={"until_idle": True}, daemon=True)
    runner.start()
    # The slow job occupies one slot; the fetcher thread keeps claiming for the free one,
    # so a job submitted meanwhile starts at once.
    deadline = time.monotonic() + 10
    while store.get_status(slow) is not JobStatus.PROCESSING and time.monotonic() < deadline:
        time.sleep(0.01)
    quick = store.enqueue(JobSpec(type="echo", payload={"n": 1})).job_id
    while store.get_status(quick) is not JobStatus.COMPLETED and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.get_status(quick) is JobStatus.COMPLETED
    assert store.get_status(slow) is JobStatus.PROCESSING  # still running
    runner.join(15)
    assert store.get_status(slow) is JobStatus.COMPLETED


# -- liveness: outcomes survive Redis error replies, broken machinery exits ----------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server that answers BUSY 50 ms into a long script."""
    server = RedisServer(directory=tmp_path, extra_args=("--busy-reply-threshold", "50")).start()
    yield server
    server.stop()


def _start(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def _stop(worker: Worker, thread: threading.Thread) -> None:
    worker.shutdown_requested.set()
    thread.join(15)


def _runs(client: redis.Redis) -> list[int]:
    return sorted(int(n) for n in client.hvals("test:runs"))


def _drive_through_refusal(
    server: RedisServer,
    refuse: Callable[[redis.Redis], None],
    recover: Callable[[redis.Redis], None],
) -> None:
    """Four jobs run on four slots; Redis refuses to record their outcomes for a while, then
    recovers: each job ran once and is recorded, no slot leaked, and the worker claims again."""
    client = server.client()
    worker, store = _worker(server, client, WORKER_COUNT="4", WORKER_TTL="600ms")
    ids = [
        store.enqueue(JobSpec(type="count_then_sleep", payload={"sleep": 0.2})).job_id
        for _ in range(4)
    ]
    thread = _start(worker)
    try:
        assert _eventually(lambda: len(client.hkeys("test:runs")) == 4)
        refuse(client)
        # Every handler returns while Redis refuses to record what they did.
        assert _eventually(lambda: all(slot.job is None for slot in worker.pool.slots))
        recover(client)
        assert _eventually(lambda: all(store.get_status(i) is JobStatus.COMPLETED for i in ids))
        assert _eventually(lambda: [w.slots_busy for w in store.live_workers()] == [0])
        after = store.enqueue(JobSpec(type="count_then_sleep", payload={})).job_id
        assert _eventually(lambda: store.get_status(after) is JobStatus.COMPLETED)
        assert _runs(client) == [1] * 5
    finally:
        _stop(worker, thread)
        client.close()


def test_outcomes_survive_busy_replies_and_are_recorded_once_redis_recovers(
    own_redis: RedisServer,
) -> None:
    spinner: list[threading.Thread] = []

    def spin(client: redis.Redis) -> None:
        # The script holds Redis 1.5 s: every other client gets BUSY meanwhile.
        other = own_redis.client(socket_timeout=10)
        thread = threading.Thread(target=keep_busy, args=(other, 1.5))
        thread.start()
        spinner.append(thread)

    def wait_spin(client: redis.Redis) -> None:
        spinner[0].join(10)

    _drive_through_refusal(own_redis, spin, wait_spin)


def test_outcomes_survive_oom_replies_and_are_recorded_once_memory_is_back(
    own_redis: RedisServer,
) -> None:
    def fill(client: redis.Redis) -> None:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)  # far below what is used: every write is refused

    def free(client: redis.Redis) -> None:
        client.config_set("maxmemory", 0)

    _drive_through_refusal(own_redis, fill, free)


def test_a_worker_whose_fetcher_thread_dies_exits_non_zero(
    redis_server: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, _ = _worker(redis_server, redis_client)

    def bug() -> None:
        raise RuntimeError("a bug in the fetcher")

    monkeypatch.setattr(worker.fetcher, "_step", bug)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(worker.run()), daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        worker.shutdown_requested.set()
        thread.join(10)
    assert codes == [1]
