"""Command logic against an in-memory stand-in for the API client (no network): batching,
queue-full retries, pagination, wait outcomes and the live view."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from workstream.cli.commands import (
    EXIT_JOB_CANCELLED,
    EXIT_JOB_FAILED,
    EXIT_JOB_UNFINISHED,
    EXIT_OK,
    Context,
    build_parser,
    cmd_cancel,
    list_pages,
    submit_batches,
    wait_exit_code,
)
from workstream.client import Client, Job, JobPage, JobRequest, Queue, Submitted, Worker
from workstream.client.errors import InvalidRequest, QueueFull, TransportError

ECHO = JobRequest("echo", {})


class FakeClient(Client):
    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:1")
        self.batches: list[int] = []
        self.keys: list[str | None] = []
        self.full_answers = 0
        self.pages: list[JobPage] = []
        self.limits: list[int] = []
        self.queue_answers: list[list[Queue] | Exception] = []

    def submit_many(self, jobs: Iterable[JobRequest | Mapping[str, Any]]) -> list[Submitted]:
        jobs = list(jobs)
        if self.full_answers:
            self.full_answers -= 1
            raise QueueFull(
                429, "queue_full", "queue default is full", headers={"retry-after": "2"}
            )
        start = sum(self.batches)
        self.batches.append(len(jobs))
        return [Submitted(f"{start + i:032x}", "pending", True) for i in range(len(jobs))]

    def list_jobs(self, **query: Any) -> JobPage:
        self.limits.append(query["limit"])
        return self.pages.pop(0)

    def queues(self) -> list[Queue]:
        answer = self.queue_answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def workers(self) -> list[Worker]:
        return []


def context(client: FakeClient, sleeps: list[float]) -> Context:
    ctx = Context(
        api_url=client.url,
        token=None,
        json=True,
        progress=False,
        out=io.StringIO(),
        err=io.StringIO(),
        sleep=sleeps.append,
        stdin=io.StringIO(),
    )
    ctx._client = client
    return ctx


def test_count_is_sent_in_batches_of_at_most_1000() -> None:
    client = FakeClient()
    err = io.StringIO()
    ctx = context(client, [])
    ctx.err = err
    assert submit_batches(ECHO, 2500, ctx) == 0
    assert client.batches == [1000, 1000, 500]
    assert err.getvalue() == ""  # no progress bar: stderr is not a terminal


def test_full_queue_is_waited_out_as_retry_after_asks() -> None:
    client = FakeClient()
    client.full_answers = 2
    sleeps: list[float] = []
    submit_batches(ECHO, 10, context(client, sleeps))
    assert (client.batches, sleeps) == ([10], [2.0, 2.0])


def test_an_error_mid_way_says_how_many_jobs_were_accepted() -> None:
    client = FakeClient()

    def fail_second(jobs: Iterable[JobRequest | Mapping[str, Any]]) -> list[Submitted]:
        if client.batches:
            raise InvalidRequest(400, "validation_error", "payload: too big")
        return FakeClient.submit_many(client, jobs)

    client.submit_many = fail_second  # type: ignore[method-assign]
    with pytest.raises(InvalidRequest) as caught:
        submit_batches(ECHO, 1500, context(client, []))
    assert caught.value.message == "payload: too big (1000 of 1500 jobs were accepted before this)"


def jobs(count: int) -> tuple[Job, ...]:
    return tuple(Job.from_json({"id": str(i)}) for i in range(count))


def test_listing_follows_cursors_until_the_limit() -> None:
    client = FakeClient()
    client.pages = [JobPage(jobs(500), "1-1"), JobPage(jobs(200), "2-2")]
    listed, cursor = list_pages(client, 700)
    assert (len(listed), cursor, client.limits) == (700, "2-2", [500, 200])


def test_listing_stops_when_there_is_no_next_page() -> None:
    client = FakeClient()
    client.pages = [JobPage(jobs(1), None)]
    listed, cursor = list_pages(client, 1000)
    assert (len(listed), cursor, client.limits) == (1, None, [500])


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("completed", EXIT_OK),
        ("failed", EXIT_JOB_FAILED),
        ("cancelled", EXIT_JOB_CANCELLED),
        ("pending", EXIT_JOB_UNFINISHED),
        ("scheduled", EXIT_JOB_UNFINISHED),
        ("processing", EXIT_JOB_UNFINISHED),
    ],
)
def test_wait_exit_code_tells_each_outcome_apart(status: str, code: int) -> None:
    assert wait_exit_code(Job.from_json({"id": "a", "status": status})) == code


def test_top_draws_the_given_number_of_frames_with_the_interval_between() -> None:
    client = FakeClient()
    client.queue_answers = [[Queue.from_json({"name": "default", "pending": n})] for n in (1, 2)]
    sleeps: list[float] = []
    ctx = context(client, sleeps)
    ctx.json = False
    args = build_parser().parse_args(["top", "--iterations", "2", "--interval", "0.5"])
    assert args.handler(args, ctx) == EXIT_OK
    out = ctx.out.getvalue()  # type: ignore[attr-defined]
    assert sleeps == [0.5]
    assert out.count("jobs: ") == 2
    assert "jobs: 1 pending" in out and "jobs: 2 pending" in out
    assert "\x1b" not in out  # no terminal: frames follow one another, no screen clearing


def test_top_shows_a_failed_refresh_and_goes_on() -> None:
    client = FakeClient()
    client.queue_answers = [
        TransportError("http://127.0.0.1:1", "connection refused"),
        [Queue.from_json({"name": "default"})],
    ]
    ctx = context(client, [])
    ctx.json = False
    args = build_parser().parse_args(["top", "--iterations", "2", "--interval", "1"])
    assert args.handler(args, ctx) == EXIT_OK
    assert "error: cannot reach API" in ctx.out.getvalue()  # type: ignore[attr-defined]


def test_top_without_a_terminal_draws_one_frame_by_default() -> None:
    client = FakeClient()
    client.queue_answers = [[], []]
    ctx = context(client, [])
    args = build_parser().parse_args(["top"])
    assert args.handler(args, ctx) == EXIT_OK
    assert len(client.queue_answers) == 1


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ({"status": "processing", "cancel_requested": True}, "asked job a to stop (it is running)"),
        ({"status": "cancelled"}, "cancelled job a"),
    ],
)
def test_cancel_says_whether_the_job_ended_or_was_asked_to_stop(
    answer: dict[str, Any], said: str
) -> None:
    client = FakeClient()
    client.cancel = lambda job_id: Job.from_json({"id": job_id, **answer})  # type: ignore[method-assign]
    ctx = context(client, [])
    ctx.json = False
    assert cmd_cancel(build_parser().parse_args(["cancel", "a"]), ctx) == EXIT_OK
    assert ctx.out.getvalue() == said + "\n"
