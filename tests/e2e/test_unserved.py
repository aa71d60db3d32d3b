"""Jobs that nobody will run are not silent: /queues flags a queue with pending jobs and no
live worker serving it, and the types used in a queue that no serving worker handles; such a
job is retried with backoff (a rolling deploy must not kill jobs meant for a newer worker).
Real workstream-api and workstream-worker processes."""

from __future__ import annotations

from typing import Any

from tests.support.stack import Api, Stack, wait_until
from workstream.worker.registry import JobContext, handler

# Fast retries, so that a job keeps coming back while the test watches.
RETRY_FAST = {"RETRY_BACKOFF": "100ms", "RETRY_BACKOFF_MAX": "300ms"}


@handler("only_on_newer_workers")
def only_on_newer_workers(payload: Any, ctx: JobContext) -> str:
    """Registered only by workers that load this module (the "newer" deploy)."""
    return ctx.worker_id


def _queues(api: Api) -> dict[str, dict[str, Any]]:
    status, body, _ = api.request("GET", "/queues")
    assert status == 200
    return {q["name"]: q for q in body["queues"]}


def _worker_ids(api: Api) -> list[str]:
    return [w["id"] for w in api.request("GET", "/workers")[1]["workers"]]


def test_a_queue_with_pending_jobs_and_no_live_worker_serving_it_is_unserved(
    stack: Stack,
) -> None:
    api = stack.start_api()
    stack.start_worker({"QUEUES": "default"})
    assert wait_until(lambda: len(_worker_ids(api)) == 1, 20)
    assert api.request("POST", "/jobs", {"type": "echo", "queue": "reports"})[0] == 201
    queues = _queues(api)
    assert (queues["reports"]["workers"], queues["reports"]["unserved"]) == (0, True)
    assert (queues["default"]["workers"], queues["default"]["unserved"]) == (1, False)


def test_types_no_serving_worker_handles_are_listed_on_their_queue(stack: Stack) -> None:
    api = stack.start_api()
    stack.start_worker({"MAX_ATTEMPTS": "100", **RETRY_FAST})
    assert wait_until(lambda: len(_worker_ids(api)) == 1, 20)
    for job_type in ("echo", "only_on_newer_workers"):
        assert api.request("POST", "/jobs", {"type": job_type})[0] == 201
    assert _queues(api)["default"]["unhandled_types"] == ["only_on_newer_workers"]


def test_a_job_no_worker_handles_is_retried_until_a_newer_worker_runs_it(stack: Stack) -> None:
    api = stack.start_api()
    stack.start_worker(RETRY_FAST)
    assert wait_until(lambda: len(_worker_ids(api)) == 1, 20)
    body = {"type": "only_on_newer_workers", "max_attempts": 100}
    status, job, _ = api.request("POST", "/jobs", body)
    assert status == 201

    def read() -> dict[str, Any]:
        return dict(api.request("GET", f"/jobs/{job['id']}")[1])

    assert wait_until(lambda: read()["attempts"] >= 2, 15), read()
    retrying = read()
    assert retrying["status"] in ("scheduled", "pending", "processing")
    assert retrying["error"] == "no handler registered for type 'only_on_newer_workers'"
    stack.start_worker({**RETRY_FAST, "WORKER_HANDLERS": "tests.handlers,tests.e2e.test_unserved"})
    assert wait_until(lambda: read()["status"] == "completed", 30), read()
    done = read()
    outcomes = [entry["outcome"] for entry in done["history"]]
    assert outcomes[-1] == "completed" and set(outcomes[:-1]) == {"failed"}
    assert done["result"] == done["history"][-1]["worker"]
    assert done["history"][0]["error"] == retrying["error"]
