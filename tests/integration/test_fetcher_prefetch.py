"""Jobs claimed ahead (worker.fetcher PREFETCH_PER_SLOT): one per slot at most, only for short
jobs, and handed back unstarted, attempt unused, when long jobs hold every slot."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis

from tests.conftest import make_settings
from tests.support.redis_server import RedisServer
from workstream.common.jobs import JobSpec
from workstream.common.states import JobStatus
from workstream.common.store import JobStore
from workstream.worker.worker import Worker


def _worker(server: RedisServer, client: redis.Redis, slots: int) -> tuple[Worker, JobStore]:
    settings = make_settings(
        server.url, WORKER_HANDLERS="tests.handlers", RETRY_BACKOFF="0s", WORKER_COUNT=str(slots)
    )
    return Worker(settings, JobStore(client, settings)), JobStore(client, settings)


def _run(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, kwargs={"until_idle": True}, daemon=True)
    thread.start()
    return thread


def _quick(store: JobStore, n: int) -> list[str]:
    spec = JobSpec(type="count_runs", payload={"sleep": 0.002})
    return [store.enqueue(spec).job_id for _ in range(n)]


def test_short_jobs_under_a_backlog_are_held_one_ahead_per_slot_and_run_once(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    worker, store = _worker(redis_server, redis_client, slots=2)
    ids = _quick(store, 300)
    processing = store.keys.processing(worker.worker_id)
    held: list[int] = []
    thread = _run(worker)
    deadline = time.monotonic() + 30
    while thread.is_alive() and time.monotonic() < deadline:
        held.append(int(redis_client.llen(processing)))
        time.sleep(0.002)
    thread.join(1)
    assert not thread.is_alive()
    assert max(held) == 4  # two running, two ahead; never more
    assert all(store.get_status(i) is JobStatus.COMPLETED for i in ids)
    assert sorted(int(n) for n in redis_client.hvals("test:runs")) == [1] * len(ids)


def test_a_job_held_ahead_behind_a_long_job_goes_back_unstarted_with_its_attempt_unused(
    redis_server: RedisServer, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker.fetcher")
    worker, store = _worker(redis_server, redis_client, slots=1)
    _quick(store, 60)  # short jobs switch claiming ahead on
    long = store.enqueue(JobSpec(type="count_then_sleep", payload={"sleep": 2})).job_id
    after = store.enqueue(JobSpec(type="count_runs", payload={})).job_id
    thread = _run(worker)
    deadline = time.monotonic() + 10
    while store.get_status(long) is not JobStatus.PROCESSING and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1.2)  # past PREFETCH_HOLD_S (and a fetcher turn), well before the long job ends
    assert store.get_status(long) is JobStatus.PROCESSING
    job = store.get_job(after)
    assert job is not None and job.status is JobStatus.PENDING and job.attempts == 0
    assert any(r.getMessage() == "fetcher.handed_back" for r in caplog.records)
    thread.join(15)
    job = store.get_job(after)
    assert job is not None and job.status is JobStatus.COMPLETED and job.attempts == 1
    assert redis_client.hget("test:runs", after) == "1"


def test_shutdown_hands_back_jobs_held_ahead_so_nothing_is_left_processing(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    worker, store = _worker(redis_server, redis_client, slots=2)
    spec = JobSpec(type="count_runs", payload={"sleep": 0.02})
    ids = [store.enqueue(spec).job_id for _ in range(200)]
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    time.sleep(0.5)
    worker.shutdown_requested.set()
    thread.join(15)
    assert not thread.is_alive()
    runs = {k: int(v) for k, v in redis_client.hgetall("test:runs").items()}
    for job_id in ids:
        job = store.get_job(job_id)
        assert job is not None
        if job_id in runs:
            assert job.status is JobStatus.COMPLETED and runs[job_id] == 1
        else:
            assert job.status is JobStatus.PENDING and job.attempts == 0
    assert 0 < len(runs) < len(ids)
    assert redis_client.exists(store.keys.processing(worker.worker_id)) == 0
