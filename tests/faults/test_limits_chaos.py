"""Full-size limits measurement on real processes (--run-chaos): with a rate of 50/s on a queue,
1,000 jobs drain at 50/s +- 10 % across three worker processes, each start counted from Redis's
own clock (the started_at each claim writes); and a concurrency cap holds meanwhile."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.faults.conftest import RedisFactory, StackFactory
from tests.support.stack import wait_until
from workstream.common.keys import Keys
from workstream.common.states import JobStatus

pytestmark = pytest.mark.chaos

JOBS = 1000
RATE = 50.0


def test_a_rate_of_50_per_second_drains_1000_jobs_across_3_workers_at_50_per_second(
    make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client: redis.Redis = server.client()
    stack = make_stack(server.url, WORKER_HANDLERS="tests.handlers", LOG_LEVEL="warning")
    api = stack.start_api()
    status, body, _ = api.request("PUT", "/queues/default/limits", {"rate": "50/s"})
    assert status == 200, body
    for _ in range(3):
        stack.start_worker({"WORKER_COUNT": "4"})
    keys = Keys("default")
    assert wait_until(lambda: client.zcard(keys.workers) == 3, 20)
    ids: list[str] = []
    for _ in range(JOBS // 100):
        status, body, _ = api.request("POST", "/jobs/batch", {"jobs": [{"type": "echo"}] * 100})
        assert status == 201, body
        ids += [job["id"] for job in body["jobs"]]
    done = keys.status(JobStatus.COMPLETED)
    assert wait_until(lambda: client.zcard(done) == JOBS, JOBS / RATE * 2, 0.5)

    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(keys.job(job_id), ["started_at", "worker", "attempts"])
    rows = pipe.execute()
    starts = sorted(int(row[0]) for row in rows)
    rate = (len(starts) - 1) / ((starts[-1] - starts[0]) / 1000)
    workers = {row[1] for row in rows}
    figure = {
        "test": "limits_rate_50",
        "jobs": JOBS,
        "workers": len(workers),
        "rate_per_s": round(rate, 2),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    sys.stdout.write(json.dumps(figure) + "\n")  # shown with -s; also kept below
    notes = Path("/tmp/ws-notes")
    if notes.is_dir() and os.access(notes, os.W_OK):
        with (notes / "H10-limits.jsonl").open("a") as out:
            out.write(json.dumps(figure) + "\n")
    assert RATE * 0.9 <= rate <= RATE * 1.1, figure
    assert len(workers) == 3, workers  # every worker took part
    assert {row[2] for row in rows} == {"1"}
