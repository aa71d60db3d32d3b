"""The lease protocol over real processes: workstream-api, workstream-worker and the Node.js
example worker (examples/node-worker) on one Redis."""

from __future__ import annotations

import time
from typing import Any

from tests.support.consumers import node_runs, start_node_worker
from tests.support.stack import Api, Stack, wait_until

# A dead worker is noticed after 1 s and the sweeper (in workstream-worker) runs every 300 ms.
FAST_RECOVERY = {"WORKER_TTL": "1s", "SWEEPER_INTERVAL": "300ms"}


def submit(api: Api, count: int, job_type: str, payload: Any, queue: str = "default") -> list[str]:
    body = {"jobs": [{"type": job_type, "payload": payload, "queue": queue}] * count}
    status, reply, _ = api.request("POST", "/jobs/batch", body)
    assert status == 201, reply
    return [job["id"] for job in reply["jobs"]]


def jobs(api: Api, ids: list[str]) -> list[dict[str, Any]]:
    return [api.request("GET", f"/jobs/{job_id}")[1] for job_id in ids]


def all_completed(api: Api, ids: list[str]) -> bool:
    return all(job["status"] == "completed" for job in jobs(api, ids))


def stale_completions(api: Api) -> int:
    _, metrics, _ = api.request("GET", "/metrics", headers={"Accept": "application/json"})
    return int(metrics["stale_completions_total"])


def test_node_workers_drain_a_queue_beside_python_workers(stack: Stack) -> None:
    api = stack.start_api()
    stack.start_worker({"WORKER_COUNT": "2"})
    nodes = [start_node_worker(stack, api, COUNT="5") for _ in range(2)]
    ids = submit(api, 300, "sleep", {"seconds": 0.01})
    assert wait_until(lambda: all_completed(api, ids), 60, 0.5), nodes[0].log()[-2000:]
    done = jobs(api, ids)
    by_node = [job for job in done if job["worker"].startswith("http:node-")]
    assert by_node and len(by_node) < len(ids)  # both kinds took a share
    assert all(job["result"] == {"slept": 0.01} for job in done)
    runs = node_runs(nodes)
    assert {job["id"] for job in by_node} <= set(runs)
    assert all(n == 1 for n in runs.values())  # nothing ran twice
    workers = {w["id"] for w in api.request("GET", "/workers")[1]["workers"]}
    assert {w for w in workers if w.startswith("http:node-")}  # consumers listed as workers


def test_jobs_leased_by_a_consumer_that_vanishes_come_back_after_the_lease(stack: Stack) -> None:
    api = stack.start_api(FAST_RECOVERY)
    stack.start_worker({**FAST_RECOVERY, "QUEUES": "other"})  # the sweeper, not a consumer
    ids = submit(api, 5, "echo", {"n": 1})
    body = {"queues": ["default"], "count": 5, "lease_s": 1, "consumer": "vanishing"}
    status, reply, _ = api.request("POST", "/leases", body)
    assert status == 200 and len(reply["leases"]) == 5
    # The consumer never answers. After the lease and one sweep the jobs are pending again,
    # each with the attempt it used, and a Node worker finishes them.
    assert wait_until(lambda: all(j["status"] == "pending" for j in jobs(api, ids)), 10, 0.2)
    node = start_node_worker(stack, api)
    assert wait_until(lambda: all_completed(api, ids), 20, 0.2), node.log()[-2000:]
    for job in jobs(api, ids):
        assert job["attempts"] == 2 and job["history"][0]["outcome"] == "lost"
        assert job["history"][0]["worker"] == "http:vanishing"


def test_a_late_complete_after_the_lease_expired_is_409_and_counted(stack: Stack) -> None:
    api = stack.start_api(FAST_RECOVERY)
    stack.start_worker({**FAST_RECOVERY, "QUEUES": "other"})
    (job_id,) = submit(api, 1, "echo", {})
    body = {"queues": ["default"], "lease_s": 1, "consumer": "slow"}
    (held,) = api.request("POST", "/leases", body)[1]["leases"]
    before = stale_completions(api)
    assert wait_until(lambda: jobs(api, [job_id])[0]["status"] == "pending", 10, 0.2)
    late = {"lease": held["lease"], "result": "late"}
    status, reply, _ = api.request("POST", f"/jobs/{job_id}/complete", late)
    assert status == 409 and reply["error"]["code"] == "lease_lost"
    assert stale_completions(api) == before + 1
    assert jobs(api, [job_id])[0]["result"] is None


def test_a_cancel_stops_a_job_running_on_a_node_worker(stack: Stack) -> None:
    api = stack.start_api()
    node = start_node_worker(stack, api, EXTEND_EVERY_S="0.5")
    (job_id,) = submit(api, 1, "sleep", {"seconds": 60})
    assert wait_until(lambda: jobs(api, [job_id])[0]["status"] == "processing", 10, 0.1)
    status, job, _ = api.request("POST", f"/jobs/{job_id}/cancel")
    assert status == 202 and job["cancel_requested"] is True
    started = time.monotonic()
    assert wait_until(lambda: jobs(api, [job_id])[0]["status"] == "cancelled", 10, 0.1), node.log()
    assert time.monotonic() - started < 3  # the next extend reply (0.5 s) stops it
    assert jobs(api, [job_id])[0]["history"][-1]["outcome"] == "cancelled"
