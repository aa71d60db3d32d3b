"""Priority on real worker processes: a job of a higher level submitted behind a backlog starts
before every job not yet claimed, however many slots and processes drain the queue; the jobs of
a SIGKILLed worker come back at their own level, and none is lost."""

from __future__ import annotations

import signal

import redis

from tests.conftest import make_settings
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, wait_until
from workstream.common.jobs import JobSpec
from workstream.common.states import JobStatus
from workstream.common.store import JobStore

WORKERS = 2
SLOTS = 4
# Jobs a worker holds at most at once: its slots, and one claimed ahead per slot
# (worker.fetcher PREFETCH_PER_SLOT).
HELD_PER_WORKER = 2 * SLOTS


def test_a_high_job_behind_10000_low_ones_starts_next(
    stack: Stack, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    store = JobStore(redis_client, make_settings(redis_server.url))
    for _ in range(10):
        low = JobSpec(type="record_order", payload={"tag": "low"})
        store.enqueue_many([low] * 1000)
    for _ in range(WORKERS):
        stack.start_worker({"WORKER_COUNT": str(SLOTS)})
    assert wait_until(lambda: redis_client.llen("test:order") >= 300, 30)  # draining
    high = JobSpec(type="record_order", payload={"tag": "high"}, priority=9)
    job_id = store.enqueue(high).job_id
    ran_before = redis_client.llen("test:order")
    assert wait_until(lambda: store.get_status(job_id) is JobStatus.COMPLETED, 15)
    position = redis_client.lpos("test:order", "high")
    assert isinstance(position, int)
    # Only jobs already claimed when it was submitted may run after that and still before it.
    assert position - ran_before <= WORKERS * HELD_PER_WORKER, (position, ran_before)
    assert store.queue_info("default").pending > 5000  # the backlog was still there


def test_a_sigkilled_workers_jobs_come_back_at_their_level_and_none_is_lost(
    stack: Stack, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    store = JobStore(redis_client, make_settings(redis_server.url))
    sleepy = JobSpec(type="count_then_sleep", payload={"sleep": 0.5}, priority=5)
    held = [store.enqueue(sleepy).job_id for _ in range(2)]
    worker = stack.start_worker({"WORKER_COUNT": "2"})
    running = lambda: redis_client.hlen("test:runs") == 2  # noqa: E731  (both handlers began)
    assert wait_until(running, 20), worker.log()[-2000:]
    low = [store.enqueue(JobSpec(type="count_runs", payload={})).job_id for _ in range(3)]
    urgent = store.enqueue(JobSpec(type="count_runs", payload={}, priority=7)).job_id
    (dead,) = [info.id for info in store.live_workers()]
    worker.signal(signal.SIGKILL)
    assert worker.wait(10) is not None
    assert store.recover(dead) == (2, 0)
    # Back in the priority set at level 5, in their order, behind the level-7 job; the plain
    # jobs untouched in the list; every job pending, none lost.
    assert redis_client.zrange(store.keys.priority("default"), 0, -1) == [urgent, *held]
    assert redis_client.lrange(store.keys.queue("default"), 0, -1) == low[::-1]
    stack.start_worker({"WORKER_COUNT": "2"})
    ids = [urgent, *held, *low]
    finished = lambda: all(store.get_status(i) is JobStatus.COMPLETED for i in ids)  # noqa: E731
    assert wait_until(finished, 30)
    jobs = [store.get_job(i) for i in ids]
    started = [job.started_at for job in jobs if job is not None and job.started_at is not None]
    assert len(started) == len(ids)
    # The level-7 job, then the recovered ones (each alone: suspects), then the plain ones.
    assert started[0] <= started[1] <= started[2] <= min(started[3:]), started
    runs = redis_client.hgetall("test:runs")
    assert [int(runs[i]) for i in held] == [2, 2]  # killed once, run again once
    assert all(int(runs[i]) == 1 for i in [urgent, *low])
