"""/workers as an operator reads it, from a real workstream-api and workstream-worker: each
worker's queues and handler types (carried by its heartbeat) and the jobs it holds right now."""

from __future__ import annotations

from typing import Any

from tests.support.stack import Api, Stack, wait_until


def _workers(api: Api) -> list[dict[str, Any]]:
    status, body, _ = api.request("GET", "/workers")
    assert status == 200
    return list(body["workers"])


def test_each_worker_shows_its_queues_and_its_handler_types(stack: Stack) -> None:
    api = stack.start_api()
    stack.start_worker({"QUEUES": "high,default"})
    assert wait_until(lambda: len(_workers(api)) == 1, 20)
    (worker,) = _workers(api)
    assert worker["queues"] == ["high", "default"]
    handlers = worker["handlers"]
    assert handlers == sorted(handlers)
    assert {"echo", "sleep", "fail", "record_order"} <= set(handlers)  # built-ins and module


def test_slots_busy_is_what_the_worker_holds_at_request_time_not_a_heartbeat_old(
    stack: Stack,
) -> None:
    api = stack.start_api()
    stack.start_worker({"WORKER_TTL": "60s"})  # a heartbeat every 20 s: none during the job
    assert wait_until(lambda: len(_workers(api)) == 1, 20)
    status, job, _ = api.request("POST", "/jobs", {"type": "sleep", "payload": {"seconds": 3}})
    assert status == 201

    def job_status() -> str:
        return str(api.request("GET", f"/jobs/{job['id']}")[1]["status"])

    assert wait_until(lambda: job_status() == "processing", 10)
    assert _workers(api)[0]["slots_busy"] == 1
    assert wait_until(lambda: job_status() == "completed", 15)
    assert _workers(api)[0]["slots_busy"] == 0
