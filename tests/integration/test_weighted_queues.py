"""A worker with weighted QUEUES drains every queue while all have work, each at about its
share; with strict order a busy first queue starves the others (as documented)."""

from __future__ import annotations

import threading

import redis

from tests.conftest import make_settings
from tests.support.redis_server import RedisServer
from tests.support.stack import wait_until
from workstream.common.jobs import JobSpec
from workstream.common.store import JobStore
from workstream.worker.worker import Worker

QUEUES = ("critical", "default", "low")


def drain_some(redis_server: RedisServer, redis_client: redis.Redis, queues: str) -> dict[str, int]:
    """1,000 jobs in each queue; one worker runs until 300 are done: how many came from each."""
    settings = make_settings(
        redis_server.url, QUEUES=queues, WORKER_HANDLERS="tests.handlers", WORKER_COUNT="1"
    )
    store = JobStore(redis_client, settings)
    for queue in QUEUES:
        for _ in range(5):
            store.enqueue_many([JobSpec(type="echo", queue=queue) for _ in range(200)])
    worker = Worker(settings, store)
    thread = threading.Thread(target=worker.run, daemon=True)

    def done() -> dict[str, int]:
        return {
            q: 1000 - store.queue_info(q).pending - store.queue_info(q).processing for q in QUEUES
        }

    seen: dict[str, int] = {}

    def enough() -> bool:
        seen.update(done())  # one snapshot, taken while the worker runs on
        return sum(seen.values()) >= 300

    thread.start()
    try:
        assert wait_until(enough, 30)
    finally:
        worker.shutdown_requested.set()
        thread.join(15)
    return seen


def test_weighted_queues_give_each_queue_about_its_share_and_never_starve_the_lowest(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    done = drain_some(redis_server, redis_client, "critical:6,default:3,low:1")
    total = sum(done.values())
    assert done["low"] > 0
    # About 60/30/10 % of the claims; loose bounds (a claim may take 2 jobs, about 150 claims).
    assert 0.45 <= done["critical"] / total <= 0.75, done
    assert 0.17 <= done["default"] / total <= 0.43, done
    assert 0.02 <= done["low"] / total <= 0.22, done


def test_strict_order_drains_the_first_queue_before_the_others(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    done = drain_some(redis_server, redis_client, "critical,default,low")
    assert done["low"] == 0 and done["default"] == 0 and done["critical"] >= 300
