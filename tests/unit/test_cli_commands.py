"""Command logic against an in-memory stand-in for the API client (no network): batching,
queue-full retries, pagination and long-poll steps."""

from __future__ import annotations

import io
from typing import Any

import pytest

from workstream.cli.client import ApiError, Client
from workstream.cli.commands import Context, list_pages, submit_batches, wait_for_job


class FakeClient(Client):
    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:1")
        self.batches: list[int] = []
        self.full_answers = 0
        self.pages: list[dict[str, Any]] = []
        self.limits: list[int | None] = []
        self.waits: list[float] = []
        self.statuses: list[str] = []
        self.now = 0.0  # the clock get_job advances, as a real long-poll would

    def submit_batch(self, jobs: list[dict[str, Any]]) -> dict[str, Any]:
        if self.full_answers:
            self.full_answers -= 1
            raise ApiError(429, "queue_full", "queue default is full", {"retry-after": "2"})
        start = sum(self.batches)
        self.batches.append(len(jobs))
        return {"jobs": [{"id": f"{start + i:032x}", "created": True} for i in range(len(jobs))]}

    def list_jobs(self, **query: Any) -> dict[str, Any]:
        self.limits.append(query["limit"])
        return self.pages.pop(0)

    def get_job(self, job_id: str, wait_s: float = 0) -> dict[str, Any]:
        self.waits.append(wait_s)
        status = self.statuses.pop(0)
        if status not in ("completed", "failed", "cancelled"):
            self.now += wait_s  # an unfinished job holds the long-poll to its end
        return {"id": job_id, "status": status}

    def clock(self) -> float:
        return self.now


def context(client: FakeClient, sleeps: list[float]) -> Context:
    ctx = Context(
        api_url=client.base_url,
        token=None,
        json=True,
        progress=False,
        out=io.StringIO(),
        err=io.StringIO(),
        sleep=sleeps.append,
    )
    ctx._client = client
    return ctx


def test_count_is_sent_in_batches_of_at_most_1000() -> None:
    client = FakeClient()
    err = io.StringIO()
    ctx = context(client, [])
    ctx.err = err
    assert submit_batches({"type": "echo", "payload": {}}, 2500, ctx) == 0
    assert client.batches == [1000, 1000, 500]
    assert err.getvalue() == ""  # no progress bar: stderr is not a terminal


def test_full_queue_is_waited_out_as_retry_after_asks() -> None:
    client = FakeClient()
    client.full_answers = 2
    sleeps: list[float] = []
    submit_batches({"type": "echo", "payload": {}}, 10, context(client, sleeps))
    assert (client.batches, sleeps) == ([10], [2.0, 2.0])


def test_an_error_mid_way_says_how_many_jobs_were_accepted() -> None:
    client = FakeClient()

    def fail_second(jobs: list[dict[str, Any]]) -> dict[str, Any]:
        if client.batches:
            raise ApiError(400, "validation_error", "payload: too big", {})
        return FakeClient.submit_batch(client, jobs)

    client.submit_batch = fail_second  # type: ignore[method-assign]
    with pytest.raises(ApiError) as caught:
        submit_batches({"type": "echo", "payload": {}}, 1500, context(client, []))
    assert caught.value.message == "payload: too big (1000 of 1500 jobs were accepted before this)"


def test_listing_follows_cursors_until_the_limit() -> None:
    client = FakeClient()
    client.pages = [
        {"jobs": [{"id": str(i)} for i in range(500)], "next_cursor": "1-1"},
        {"jobs": [{"id": str(i)} for i in range(200)], "next_cursor": "2-2"},
    ]
    jobs, cursor = list_pages(client, 700)
    assert (len(jobs), cursor, client.limits) == (700, "2-2", [500, 200])


def test_listing_stops_when_there_is_no_next_page() -> None:
    client = FakeClient()
    client.pages = [{"jobs": [{"id": "a"}], "next_cursor": None}]
    jobs, cursor = list_pages(client, 1000)
    assert (len(jobs), cursor, client.limits) == (1, None, [500])


def test_long_waits_poll_in_steps_the_api_accepts() -> None:
    client = FakeClient()
    client.statuses = ["processing", "completed"]
    job = wait_for_job(client, "a" * 32, 90, lambda s: None, client.clock)
    assert job["status"] == "completed"
    assert client.waits == [60, 30]


def test_wait_ends_unfinished_when_the_time_is_up() -> None:
    client = FakeClient()
    client.statuses = ["processing", "processing", "processing"]
    job = wait_for_job(client, "a" * 32, 100, lambda s: None, client.clock)
    assert job["status"] == "processing"
    assert client.waits == [60, 40]
