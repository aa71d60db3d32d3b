"""The docker-compose topology with real processes: two APIs, three workers, one Redis."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import redis

from tests.support.stack import Api, Stack, wait_until

JOBS = 2000
GRACE_S = 5


def _submit_through(api: Api, start: int, count: int) -> list[str]:
    """Half one at a time, half in batches, so both paths carry load."""
    ids: list[str] = []
    singles = count // 2
    for n in range(start, start + singles):
        status, job, _ = api.request("POST", "/jobs", {"type": "echo", "payload": {"n": n}})
        assert status == 201, job
        ids.append(job["id"])
    for first in range(start + singles, start + count, 250):
        jobs = [{"type": "echo", "payload": {"n": n}} for n in range(first, first + 250)]
        status, body, _ = api.request("POST", "/jobs/batch", {"jobs": jobs})
        assert status == 201, body
        ids += [job["id"] for job in body["jobs"]]
    return ids


def _metrics(api: Api) -> dict[str, object]:
    return dict(api.request("GET", "/metrics", headers={"Accept": "application/json"})[1])


def test_two_apis_and_three_workers_complete_every_job_and_stop_cleanly(
    stack: Stack, redis_client: redis.Redis
) -> None:
    env = {"SHUTDOWN_GRACE": f"{GRACE_S}s", "LOG_LEVEL": "warning"}
    apis = [stack.start_api(env), stack.start_api(env)]
    assert apis[0].port != apis[1].port
    workers = [stack.start_worker(env) for _ in range(3)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        halves = list(pool.map(_submit_through, apis, [0, JOBS // 2], [JOBS // 2] * 2))
    ids = halves[0] + halves[1]
    assert len(set(ids)) == JOBS

    assert wait_until(lambda: _metrics(apis[0])["jobs_completed"] == JOBS, 90, 0.2)
    for api in apis:  # every result is the job's own payload, read through either API
        for index in range(0, JOBS, 97):
            job = api.request("GET", f"/jobs/{ids[index]}")[1]
            assert job["status"] == "completed" and job["result"] == job["payload"]
    first, second = _metrics(apis[0]), _metrics(apis[1])
    assert first == second
    assert first["total_jobs_created"] == JOBS and first["jobs_failed"] == 0
    prometheus = [api.request("GET", "/metrics")[1] for api in apis]
    line = f'workstream_jobs_completed_total{{queue="default",type="echo"}} {float(JOBS)}'
    assert all(line in text for text in prometheus)

    for process in [*workers, *apis]:
        process.signal(signal.SIGTERM)
    started = time.monotonic()
    codes = [process.wait(GRACE_S + 10) for process in [*workers, *apis]]
    assert codes == [0] * 5
    assert time.monotonic() - started < GRACE_S + 10
    assert redis_client.zcard("ws:{default}:workers") == 0
    statuses = redis_client.zcard("ws:{default}:status:completed")
    assert statuses == JOBS  # none lost, none stuck
