"""REDIS_URL=redis+sentinel://: real workstream-api and workstream-worker processes find the
primary through three real sentinels and follow a failover without a restart."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.sentinel import SentinelTopology
from tests.support.stack import Api, Stack, wait_until

from .conftest import REPO


@pytest.fixture
def topology() -> Iterator[SentinelTopology]:
    started = SentinelTopology.start()
    yield started
    started.stop()


@pytest.fixture
def stack(topology: SentinelTopology, request: pytest.FixtureRequest) -> Iterator[Stack]:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:80]
    live = Stack(
        topology.url,
        REPO / "test-output" / "e2e" / name,
        env={"WORKER_HANDLERS": "tests.handlers", "LOG_LEVEL": "info"},
    )
    yield live
    live.stop_all()


def submit_until_created(api: Api, body: dict[str, Any], timeout_s: float) -> str:
    """POSTs until 201, as a client honouring 503 would (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, reply, _ = api.request("POST", "/jobs", body)
        if status == 201:
            return str(reply["id"])
        assert status == 503, reply
        time.sleep(0.1)
    raise AssertionError(f"no 201 in {timeout_s}s")


def completed(api: Api, job_id: str, timeout_s: float) -> bool:
    def done() -> bool:
        status, reply, _ = api.request("GET", f"/jobs/{job_id}")
        return status == 200 and reply["status"] == "completed"

    return wait_until(done, timeout_s, 0.1)


def test_api_and_worker_follow_a_sigkilled_primary_to_the_promoted_replica(
    topology: SentinelTopology, stack: Stack
) -> None:
    api = stack.start_api()
    worker = stack.start_worker()
    first = submit_until_created(api, {"type": "echo", "payload": {"n": 1}}, 10)
    assert completed(api, first, 20)
    assert topology.primary.client().hget(f"ws:{{default}}:job:{first}", "status") == "completed"

    old = topology.primary
    old.kill()
    status, reply, headers = api.request("POST", "/jobs", {"type": "echo"})
    assert (status, reply["error"]["code"]) == (503, "redis_unavailable")  # no primary yet
    assert int(headers["retry-after"]) > 0
    new, _ = topology.wait_failover(old)

    second = submit_until_created(api, {"type": "echo", "payload": {"n": 2}}, 20)
    assert completed(api, second, 30), worker.log()[-3000:]
    assert new.client().hget(f"ws:{{default}}:job:{second}", "status") == "completed"
    assert api.alive() and worker.alive()  # followed by themselves: nothing restarted
