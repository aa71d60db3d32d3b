"""Limits on real processes: the API and several worker processes share one queue's limits,
enforced in Redis at claim time (common/limits.py)."""

from __future__ import annotations

import signal
import time
from datetime import datetime
from typing import Any

import redis

from tests.support.stack import Api, Stack, wait_until

FAST_RECOVERY = {"WORKER_TTL": "1s", "SWEEPER_INTERVAL": "300ms"}


def submit(api: Api, jobs: list[dict[str, Any]]) -> list[str]:
    status, body, _ = api.request("POST", "/jobs/batch", {"jobs": jobs})
    assert status == 201, body
    return [job["id"] for job in body["jobs"]]


def put_limits(api: Api, **limits: Any) -> None:
    status, body, _ = api.request("PUT", "/queues/default/limits", limits)
    assert status == 200, body


def finished(api: Api, ids: list[str], timeout_s: float) -> list[dict[str, Any]]:
    def done() -> bool:
        return all(api.request("GET", f"/jobs/{i}")[1]["status"] == "completed" for i in ids)

    assert wait_until(done, timeout_s, 0.2), "jobs did not complete in time"
    return [api.request("GET", f"/jobs/{i}")[1] for i in ids]


def start_workers(stack: Stack, count: int, **env: str) -> None:
    for _ in range(count):
        stack.start_worker({"WORKER_COUNT": "4", **env})


def test_a_concurrency_cap_holds_across_two_worker_processes(
    stack: Stack, redis_client: redis.Redis
) -> None:
    api = stack.start_api()
    put_limits(api, concurrency=3)
    ids = submit(api, [{"type": "overlap", "payload": {"key": "q", "sleep": 0.2}}] * 18)
    start_workers(stack, 2)
    jobs = finished(api, ids, 30)
    seen = [int(n) for n in redis_client.lrange("test:overlap:q", 0, -1)]
    assert len(seen) == 18 and max(seen) == 3, seen  # never more than 3, and 3 are used
    assert {job["attempts"] for job in jobs} == {1}  # held jobs used no attempt
    assert len({job["worker"] for job in jobs}) == 2


def test_a_group_cap_holds_per_group_without_holding_up_other_groups(
    stack: Stack, redis_client: redis.Redis
) -> None:
    api = stack.start_api()
    put_limits(api, group_concurrency=1)
    jobs = [
        {"type": "overlap", "group": group, "payload": {"key": group, "sleep": 0.15}}
        for _ in range(4)
        for group in ("a", "b", "c")
    ]
    # Each group's jobs queued back to back first: the head of the queue is all one group.
    jobs.sort(key=lambda job: job["group"])
    ids = submit(api, jobs)
    start_workers(stack, 2)
    done = finished(api, ids, 30)
    for group in ("a", "b", "c"):
        assert [int(n) for n in redis_client.lrange(f"test:overlap:{group}", 0, -1)] == [1] * 4
    assert {job["attempts"] for job in done} == {1}
    # The groups ran side by side: all 12 took far less than 12 runs one after another.
    started = sorted(job["started_at"] for job in done)
    finished_at = sorted(job["finished_at"] for job in done)
    assert _seconds(finished_at[-1]) - _seconds(started[0]) < 12 * 0.15
    assert redis_client.hlen("ws:{default}:groups:default") == 0


def test_a_rate_of_20_per_second_drains_60_jobs_at_20_per_second(stack: Stack) -> None:
    api = stack.start_api()
    put_limits(api, rate="20/s")
    start_workers(stack, 2)
    time.sleep(0.5)  # both registered and waiting
    ids = submit(api, [{"type": "echo"}] * 60)
    jobs = finished(api, ids, 30)
    starts = sorted(_seconds(job["started_at"]) for job in jobs)
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert 17 <= rate <= 23, rate  # 20/s +- 15 %
    assert {job["attempts"] for job in jobs} == {1}


def test_a_sigkilled_workers_slots_come_back_when_it_is_recovered(
    stack: Stack, redis_client: redis.Redis
) -> None:
    api = stack.start_api()
    put_limits(api, concurrency=2, group_concurrency=1)
    first = stack.start_worker({"WORKER_COUNT": "2", **FAST_RECOVERY})
    ids = submit(
        api,
        [{"type": "sleep", "group": g, "payload": {"seconds": 0.3}} for g in ("a", "b", "a", "b")],
    )
    assert wait_until(lambda: redis_client.hget("ws:{default}:inflight", "default") == "2", 20)
    first.signal(signal.SIGKILL)
    first.wait(5)
    stack.start_worker({"WORKER_COUNT": "2", **FAST_RECOVERY})
    jobs = finished(api, ids, 40)
    assert {job["status"] for job in jobs} == {"completed"}
    assert redis_client.hget("ws:{default}:inflight", "default") in (None, "0")
    assert redis_client.hlen("ws:{default}:groups:default") == 0


def _seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
