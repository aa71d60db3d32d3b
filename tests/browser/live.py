"""A live WorkStream stack for the browser tests, and small HTTP helpers to drive it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.support.stack import Api, Process, Stack, wait_until

SETTLE_TIMEOUT_S = 15.0


@dataclass
class Live:
    """One workstream-api and one workstream-worker, sharing a namespace on the test Redis."""

    stack: Stack
    api: Api
    worker: Process

    @property
    def ui_url(self) -> str:
        return f"{self.api.url}/ui"


def submit(api: Api, job_type: str, payload: Any = None, **fields: Any) -> dict[str, Any]:
    """POST /jobs; returns the created job (asserting 201)."""
    body = {"type": job_type, "payload": {} if payload is None else payload, **fields}
    status, job, _ = api.request("POST", "/jobs", body)
    assert status == 201, (status, job)
    return dict(job)


def get_job(api: Api, job_id: str) -> dict[str, Any]:
    status, job, _ = api.request("GET", f"/jobs/{job_id}")
    assert status == 200, (status, job)
    return dict(job)


def wait_status(
    api: Api, job_id: str, status: str, timeout_s: float = SETTLE_TIMEOUT_S
) -> dict[str, Any]:
    """Waits (bounded) until the job reaches `status`; returns it."""
    reached = wait_until(lambda: get_job(api, job_id)["status"] == status, timeout_s, 0.1)
    job = get_job(api, job_id)
    assert reached, f"job {job_id} not {status} within {timeout_s}s: {job}"
    return job


def set_paused(api: Api, queue: str, paused: bool) -> None:
    status, body, _ = api.request("POST", f"/queues/{queue}/{'pause' if paused else 'resume'}")
    assert status == 200 and body["paused"] is paused, (status, body)
