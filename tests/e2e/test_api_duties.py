"""The API process promotes delayed jobs and fires schedules like a worker does, so both happen
with no workstream-worker running. Real workstream-api processes, no worker."""

from __future__ import annotations

from tests.support.stack import Api, Stack, wait_until


def _job(api: Api, job_id: str) -> dict[str, object]:
    status, job, _ = api.request("GET", f"/jobs/{job_id}")
    assert status == 200
    return dict(job)


def test_a_delayed_job_becomes_pending_with_only_the_api_running(stack: Stack) -> None:
    api = stack.start_api()
    status, job, _ = api.request("POST", "/jobs", {"type": "echo", "delay": 1})
    assert status == 201 and job["status"] == "scheduled"
    assert wait_until(lambda: _job(api, job["id"])["status"] == "pending", 10)


def test_a_schedule_fires_with_only_the_api_running(stack: Stack) -> None:
    api = stack.start_api()
    schedule = {"every": "1s", "job": {"type": "echo"}}
    assert api.request("PUT", "/schedules/tick", schedule)[0] in (200, 201)

    def fired() -> bool:
        status, page, _ = api.request("GET", "/jobs?type=echo")
        return status == 200 and len(page["jobs"]) >= 1

    assert wait_until(fired, 10)
