"""Schedules on real processes: three workers fire, two APIs define and change schedules; every
due run is enqueued exactly once, with a worker SIGKILLed in between. This is the short
version; tests/faults/test_schedules_chaos.py runs it over 20 s and adds the missed-run
policies after every firer stopped."""

from __future__ import annotations

import signal
import time
from typing import Any, cast

import redis

from tests.support.stack import Api, Stack, wait_until
from workstream.common.keys import Keys

ENV = {"WORKER_COUNT": "2", "WORKER_TTL": "1s", "SWEEPER_INTERVAL": "300ms"}
KEYS = Keys("default")


def put(api: Api, schedule_id: str, body: dict[str, Any]) -> dict[str, Any]:
    status, reply, _ = api.request("PUT", f"/schedules/{schedule_id}", body)
    assert status in (200, 201), reply
    return dict(reply)


def runs(client: redis.Redis, schedule_id: str) -> list[int]:
    """The due times (ms) of the jobs the schedule created, in order, repeats kept."""
    pipe = client.pipeline(transaction=False)
    for job_id in cast(list[str], client.zrange(KEYS.jobs, 0, -1)):
        pipe.hmget(KEYS.job(job_id), ["schedule_id", "scheduled_for"])
    return sorted(int(due) for owner, due in pipe.execute() if owner == schedule_id)


def assert_every_run_once(client: redis.Redis, schedule_id: str, every_ms: int) -> list[int]:
    """No run twice, none left out between the first and the last, as many as it counted."""
    due = runs(client, schedule_id)
    assert due == list(range(due[0], due[-1] + 1, every_ms)), due
    assert int(client.hget(KEYS.schedule(schedule_id), "runs") or 0) == len(due)
    return due


def start_firers(stack: Stack, apis: int, workers: int) -> tuple[list[Api], list[Any]]:
    started_apis = [stack.start_api(ENV) for _ in range(apis)]
    started = [stack.start_worker(ENV) for _ in range(workers)]

    def registered() -> bool:
        return len(started_apis[0].request("GET", "/workers")[1]["workers"]) == workers

    assert wait_until(registered, 20), started[0].log()[-2000:]
    return started_apis, started


def run_span(stack: Stack, client: redis.Redis, span_s: float) -> None:
    """Two schedules over `span_s` seconds, one defined through each API; a worker SIGKILLed
    at a third of the span, and the 1 s schedule PUT again (same timing) through the other API
    at two thirds; then both paused, so nothing fires while they are read."""
    apis, workers = start_firers(stack, apis=2, workers=3)
    put(apis[0], "fast", {"every": "1s", "job": {"type": "echo", "payload": {"s": "fast"}}})
    put(apis[1], "slow", {"every": "2s", "job": {"type": "echo", "payload": {"s": "slow"}}})
    start = time.monotonic()
    killed = replaced = False
    while (elapsed := time.monotonic() - start) < span_s:
        if not killed and elapsed > span_s / 3:
            workers[0].signal(signal.SIGKILL)
            killed = True
        if not replaced and elapsed > 2 * span_s / 3:
            put(apis[1], "fast", {"every": "1s", "job": {"type": "echo", "payload": {"s": "v2"}}})
            replaced = True
        time.sleep(0.05)
    for schedule_id in ("fast", "slow"):
        assert apis[1].request("POST", f"/schedules/{schedule_id}/pause")[0] == 200

    fast = assert_every_run_once(client, "fast", 1000)
    slow = assert_every_run_once(client, "slow", 2000)
    assert len(fast) >= span_s - 2 and len(slow) >= span_s / 2 - 2, (fast, slow)
    assert len(client.zrange(KEYS.jobs, 0, -1)) == len(fast) + len(slow)
    stats = cast(dict[str, str], client.hgetall(KEYS.stats))
    created = sum(int(v) for k, v in stats.items() if k.startswith("created|"))
    assert created == len(fast) + len(slow)
    assert not workers[0].alive()


def test_each_due_run_is_enqueued_once_by_three_workers_with_one_killed(
    stack: Stack, redis_client: redis.Redis
) -> None:
    run_span(stack, redis_client, span_s=5)
