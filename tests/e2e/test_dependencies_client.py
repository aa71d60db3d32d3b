"""Dependencies through the Python client against a live API and worker: a chain submitted in
one batch runs in order, a fan-in waits for every parent, and a failed parent cancels its child
(reason parent_failed) while a child with on_parent_failure=run still runs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import RedisServer
from tests.support.stack import Api, Stack, wait_until
from workstream.client import Client, JobRequest


@pytest.fixture
def api(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Api]:
    stack = Stack(redis_server.url, tmp_path / "logs", env={"RETRY_BACKOFF": "0s"})
    try:
        stack.start_worker()
        api = stack.start_api()
        assert wait_until(lambda: bool(api.request("GET", "/workers")[1]["workers"]), 20)
        yield api
    finally:
        stack.stop_all()


def test_a_chain_and_a_fan_in_run_after_their_parents(api: Api) -> None:
    with Client(api.url) as client:
        submitted = client.submit_many(
            [
                JobRequest("echo", {"step": 3}, id="c3", depends_on=["c2"]),
                JobRequest("echo", {"step": 2}, id="c2", depends_on=["c1"]),
                JobRequest("echo", {"step": 1}, id="c1"),
            ]
        )
        assert [s.status for s in submitted] == ["waiting", "waiting", "pending"]
        parts = [client.submit("echo", {"part": n}, id=f"part-{n}") for n in (1, 2, 3)]
        join = client.submit("echo", {"join": True}, id="join", depends_on=[p.id for p in parts])
        assert join.depends_on == ("part-1", "part-2", "part-3")
        chain = [client.wait(job_id, timeout=30) for job_id in ("c1", "c2", "c3")]
        assert [job.status for job in chain] == ["completed"] * 3
        for parent, child in itertools.pairwise(chain):
            assert parent.finished_at is not None and child.started_at is not None
            assert parent.finished_at <= child.started_at
        done = client.wait("join", timeout=30)
        assert done.status == "completed"
        for part in parts:
            finished = client.get(part.id).finished_at
            assert finished is not None and done.started_at is not None
            assert finished <= done.started_at
        assert client.get("part-1").children == ("join",)


def test_a_failed_parent_cancels_one_child_and_releases_the_other(api: Api) -> None:
    with Client(api.url) as client:
        # Delayed, so that it cannot end before both children are submitted (they would then
        # be judged at submission, not by its ending).
        client.submit("fail", {"permanent": True}, id="bad", max_attempts=1, delay=1)
        cancelled = client.submit("echo", id="after-bad", depends_on=["bad"])
        runs = client.submit("echo", id="anyway", depends_on=["bad"], on_parent_failure="run")
        assert cancelled.status == runs.status == "waiting"
        assert client.wait("bad", timeout=30).status == "failed"
        ended = client.wait("after-bad", timeout=30)
        assert ended.status == "cancelled" and ended.error == "parent_failed: bad"
        assert client.wait("anyway", timeout=30).status == "completed"
