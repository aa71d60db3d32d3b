"""The API process sweeps and schedules like a worker does, so a deployment whose consumers all
speak HTTP needs no workstream-worker: expired leases come back, delayed jobs become pending and
schedules fire. Real workstream-api processes, no worker."""

from __future__ import annotations

from tests.support.stack import Api, Stack, wait_until

FAST = {"WORKER_TTL": "1s", "SWEEPER_INTERVAL": "200ms"}


def _job(api: Api, job_id: str) -> dict[str, object]:
    status, job, _ = api.request("GET", f"/jobs/{job_id}")
    assert status == 200
    return dict(job)


def test_an_expired_lease_comes_back_with_only_the_api_running(stack: Stack) -> None:
    api = stack.start_api(FAST)
    status, job, _ = api.request("POST", "/jobs", {"type": "echo", "max_attempts": 3})
    assert status == 201
    lease = {"queues": ["default"], "consumer": "gone", "count": 1, "wait": 0, "lease_s": 1}
    status, body, _ = api.request("POST", "/leases", lease)
    assert status == 200 and len(body["leases"]) == 1
    # The consumer never answers: the API's own sweeper takes the job back.
    assert wait_until(lambda: _job(api, job["id"])["status"] == "pending", 15)
    history = _job(api, job["id"])["history"]
    assert isinstance(history, list) and history[-1]["outcome"] == "lost"


def test_a_delayed_job_becomes_pending_with_only_the_api_running(stack: Stack) -> None:
    api = stack.start_api(FAST)
    status, job, _ = api.request("POST", "/jobs", {"type": "echo", "delay": 1})
    assert status == 201 and job["status"] == "scheduled"
    assert wait_until(lambda: _job(api, job["id"])["status"] == "pending", 10)


def test_a_schedule_fires_with_only_the_api_running(stack: Stack) -> None:
    api = stack.start_api(FAST)
    schedule = {"every": "1s", "job": {"type": "echo"}}
    assert api.request("PUT", "/schedules/tick", schedule)[0] in (200, 201)

    def fired() -> bool:
        status, page, _ = api.request("GET", "/jobs?type=echo")
        return status == 200 and len(page["jobs"]) >= 1

    assert wait_until(fired, 10)
