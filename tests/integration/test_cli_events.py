"""`workstream events` through the real client and API (in process, over WSGI): it follows the
stream across responses, filters, prints JSON lines, and resumes from --since."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import httpx
import pytest

from tests.integration.api_fixtures import submit
from workstream.api.app import create_app
from workstream.cli.commands import EXIT_OK, Context, UsageError, build_parser
from workstream.cli.events import human, since_position
from workstream.client import Client
from workstream.common.settings import Settings
from workstream.common.store import JobStore


def context(settings: Settings, store: JobStore, *, json_output: bool = True) -> Context:
    app = create_app(settings.with_overrides(events_hold=settings.events_hold / 75), store)
    transport = httpx.WSGITransport(app=app)  # type: ignore[arg-type]  # Falcon types env narrower
    client = Client("http://api.test", transport=transport)
    ctx = Context(
        api_url=client.url, token=None, json=json_output, progress=False,
        out=io.StringIO(), err=io.StringIO(), stdin=io.StringIO(),
    )  # fmt: skip
    ctx._client = client
    return ctx


def run(ctx: Context, *argv: str) -> list[Any]:
    """Runs `workstream events ...`; its JSON lines."""
    assert isinstance(ctx.out, io.StringIO)
    args = build_parser().parse_args(["events", *argv])
    assert args.handler(args, ctx) == EXIT_OK
    return [json.loads(line) for line in ctx.out.getvalue().splitlines()]


def test_follows_new_events_across_responses_until_count(
    settings: Settings, store: JobStore
) -> None:
    ctx = context(settings, store)
    jobs: list[str] = []

    def produce() -> None:
        for _ in range(3):
            jobs.append(submit(store))
            threading.Event().wait(0.3)  # each in a later response than the one before

    producer = threading.Timer(0.2, produce)
    producer.start()
    # From the oldest kept (the stream starts empty): no race with the first request.
    lines = run(ctx, "--since", "0", "--count", "3")
    producer.join()
    assert [line["job_id"] for line in lines] == jobs
    assert all(line["event"] == "created" for line in lines)


def test_filters_and_since_replay_what_is_kept(settings: Settings, store: JobStore) -> None:
    mail = submit(store, queue="mail", type="send")
    submit(store, queue="bulk", type="send")
    (job,) = store.claim("w1", 1, ["mail"])
    store.complete("w1", job, "1")
    lines = run(context(settings, store), "--since", "0", "--no-follow", "--queue", "mail")
    assert [(line["job_id"], line["event"]) for line in lines] == [
        (mail, "created"),
        (mail, "started"),
        (mail, "completed"),
    ]
    resumed = run(context(settings, store), "--since", lines[0]["id"], "--no-follow", "--job", mail)
    assert [line["event"] for line in resumed] == ["started", "completed"]


def test_human_lines_name_the_event_job_and_worker(settings: Settings, store: JobStore) -> None:
    job_id = submit(store)
    (job,) = store.claim("w7", 1, ["default"])
    store.fail("w7", job, "boom", permanent=True)
    ctx = context(settings, store, json_output=False)
    args = build_parser().parse_args(["events", "--since", "0", "--no-follow"])
    assert args.handler(args, ctx) == EXIT_OK
    assert isinstance(ctx.out, io.StringIO)
    last = ctx.out.getvalue().splitlines()[-1]
    assert "failed" in last and job_id in last and "worker w7" in last and "boom" in last


def test_gap_notices_and_since_forms() -> None:
    assert "trimmed" in human("gap", {"after": "1-0", "oldest": "5-0"})
    assert since_position("0", lambda: 0) == "0"
    assert since_position("10s", lambda: 60_000) == "50000"
    with pytest.raises(UsageError):
        since_position("yesterday", lambda: 0)
