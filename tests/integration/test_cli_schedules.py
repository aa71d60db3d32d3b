"""`workstream schedules ...` through the real client and API (in process, over WSGI)."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest

from tests.integration import api_fixtures
from workstream.cli.commands import EXIT_OK, Context, build_parser
from workstream.client import Client
from workstream.client.errors import ApiError

app = api_fixtures.app


@pytest.fixture
def ctx(app: api_fixtures.App) -> Context:
    transport = httpx.WSGITransport(app=app)  # type: ignore[arg-type]  # Falcon types env narrower
    client = Client("http://api.test", transport=transport)
    context = Context(
        api_url=client.url, token=None, json=True, progress=False,
        out=io.StringIO(), err=io.StringIO(), stdin=io.StringIO(),
    )  # fmt: skip
    context._client = client
    return context


def run(ctx: Context, *argv: str) -> Any:
    """Runs one command; its JSON output."""
    assert isinstance(ctx.out, io.StringIO)
    ctx.out.seek(0)
    ctx.out.truncate()
    args = build_parser().parse_args(list(argv))
    assert args.handler(args, ctx) == EXIT_OK
    return json.loads(ctx.out.getvalue())


def test_put_list_show_pause_resume_delete(ctx: Context) -> None:
    put = run(
        ctx, "schedules", "put", "nightly", "--cron", "0 3 * * *", "--timezone",
        "Europe/Berlin", "--type", "report", "--payload", '{"to": "ops"}', "--queue", "mail",
        "--max-attempts", "2", "--missed", "skip",
    )  # fmt: skip
    assert put["cron"] == "0 3 * * *" and put["timezone"] == "Europe/Berlin"
    assert put["job"] == {"type": "report", "payload": {"to": "ops"}, "queue": "mail",
                          "max_attempts": 2}  # fmt: skip
    assert put["missed"] == "skip"
    run(ctx, "schedules", "put", "tick", "--every", "30s", "--type", "echo")

    assert [s["id"] for s in run(ctx, "schedules", "list")["schedules"]] == ["nightly", "tick"]
    assert run(ctx, "schedules", "show", "tick")["every"] == "30s"
    assert run(ctx, "schedules", "pause", "tick")["paused"] is True
    assert run(ctx, "schedules", "resume", "tick")["paused"] is False
    assert run(ctx, "schedules", "delete", "tick", "--yes") == {"schedule": "tick", "deleted": True}
    assert [s["id"] for s in run(ctx, "schedules", "list")["schedules"]] == ["nightly"]


def test_a_refused_put_surfaces_the_api_error_code(ctx: Context) -> None:
    with pytest.raises(ApiError) as caught:
        run(ctx, "schedules", "put", "bad", "--cron", "99 * * * *", "--type", "echo")

    assert caught.value.code == "invalid_cron"


def test_delete_without_yes_and_without_a_terminal_is_refused(ctx: Context) -> None:
    run(ctx, "schedules", "put", "tick", "--every", "30s", "--type", "echo")
    args = build_parser().parse_args(["schedules", "delete", "tick"])

    with pytest.raises(Exception, match="--yes"):
        args.handler(args, ctx)
    assert run(ctx, "schedules", "show", "tick")["id"] == "tick"


def test_the_human_table_lists_next_and_last_run(ctx: Context) -> None:
    run(ctx, "schedules", "put", "tick", "--every", "30s", "--type", "echo")
    ctx.json = False
    assert isinstance(ctx.out, io.StringIO)
    ctx.out.seek(0)
    ctx.out.truncate()
    args = build_parser().parse_args(["schedules"])

    assert args.handler(args, ctx) == EXIT_OK
    header, row = ctx.out.getvalue().splitlines()
    assert header.split()[:3] == ["ID", "RUNS", "ON"]
    assert row.startswith("tick") and "every 30s" in row and "echo -> default" in row
