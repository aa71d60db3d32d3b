"""Cancelling running jobs and reporting progress, over real workstream-api and
workstream-worker processes. The worker also loads this module for its handlers."""

from __future__ import annotations

import time
from typing import Any

from tests.support.stack import Api, Stack, wait_until
from workstream.worker.registry import JobContext, handler

HANDLERS = {"WORKER_HANDLERS": "tests.handlers,tests.e2e.test_cancel_running"}


@handler("e2e_progress_then_wait")
def progress_then_wait(payload: Any, ctx: JobContext) -> str:
    ctx.progress(0.5, "halfway")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ctx.heartbeat()
        time.sleep(0.02)
    return "not cancelled"


def _job(api: Api, job_id: str) -> dict[str, Any]:
    status, body, _ = api.request("GET", f"/jobs/{job_id}")
    assert status == 200
    return dict(body)


def _submit(api: Api, body: dict[str, Any]) -> str:
    status, job, _ = api.request("POST", "/jobs", body)
    assert status == 201
    return str(job["id"])


def test_a_running_sleep_job_ends_cancelled_within_a_second_or_two(stack: Stack) -> None:
    api = stack.start_api()
    stack.start_worker()
    job_id = _submit(api, {"type": "sleep", "payload": {"seconds": 60}})
    assert wait_until(lambda: _job(api, job_id)["status"] == "processing", 20)
    status, body, _ = api.request("POST", f"/jobs/{job_id}/cancel")
    assert (status, body["cancel_requested"]) == (202, True)
    asked = time.monotonic()
    assert wait_until(lambda: _job(api, job_id)["status"] == "cancelled", 5)
    assert time.monotonic() - asked < 2
    ended = _job(api, job_id)
    assert ended["history"][-1]["outcome"] == "cancelled"


def test_progress_shows_in_get_and_a_cancel_stops_the_handler(stack: Stack) -> None:
    api = stack.start_api()
    stack.start_worker(HANDLERS)
    job_id = _submit(api, {"type": "e2e_progress_then_wait"})
    assert wait_until(lambda: _job(api, job_id)["progress"] is not None, 20)
    assert _job(api, job_id)["progress"] == {"value": 0.5, "message": "halfway"}
    assert api.request("POST", f"/jobs/{job_id}/cancel")[0] == 202
    assert wait_until(lambda: _job(api, job_id)["status"] == "cancelled", 5)


def test_cancel_racing_completion_ends_each_job_as_its_answer_said(stack: Stack) -> None:
    api = stack.start_api()
    stack.start_worker({"WORKER_COUNT": "4"})
    job_ids = [_submit(api, {"type": "sleep", "payload": {"seconds": 0.05}}) for _ in range(30)]
    answers = {job_id: api.request("POST", f"/jobs/{job_id}/cancel")[0] for job_id in job_ids}
    assert set(answers.values()) <= {200, 202, 409}

    def all_ended() -> bool:
        return all(_job(api, job_id)["status"] in ("completed", "cancelled") for job_id in job_ids)

    assert wait_until(all_ended, 20)
    expected = {200: "cancelled", 202: "cancelled", 409: "completed"}
    ended = {job_id: _job(api, job_id)["status"] for job_id in job_ids}
    assert ended == {job_id: expected[answer] for job_id, answer in answers.items()}
