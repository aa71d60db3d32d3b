"""`workstream batches ...` and the client's batch calls, through the real API (in process)."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest

from tests.integration import api_fixtures
from workstream.cli import batches as cli_batches
from workstream.cli.commands import EXIT_OK, Context, build_parser
from workstream.client import Client, JobRequest
from workstream.client.errors import ApiError
from workstream.common.store import JobStore

app = api_fixtures.app


@pytest.fixture
def api(app: api_fixtures.App) -> Client:
    transport = httpx.WSGITransport(app=app)  # type: ignore[arg-type]  # Falcon types env narrower
    return Client("http://api.test", transport=transport)


@pytest.fixture
def ctx(api: Client) -> Context:
    context = Context(
        api_url=api.url, token=None, json=True, progress=False,
        out=io.StringIO(), err=io.StringIO(), stdin=io.StringIO(),
    )  # fmt: skip
    context._client = api
    return context


def run(ctx: Context, *argv: str) -> Any:
    assert isinstance(ctx.out, io.StringIO)
    ctx.out.seek(0)
    ctx.out.truncate()
    args = build_parser().parse_args(list(argv))
    assert args.handler(args, ctx) == EXIT_OK
    return json.loads(ctx.out.getvalue())


def test_client_builds_a_batch_in_calls_and_the_cli_lists_shows_and_seals_it(
    api: Client, ctx: Context, store: JobStore
) -> None:
    made = api.create_batch(open=True, on_complete={"type": "report", "payload": {"to": "ops"}})
    for chunk in range(2):
        api.add_to_batch(made["id"], [JobRequest("echo", {"n": chunk * 10 + i}) for i in range(3)])
    assert [b["id"] for b in run(ctx, "batches", "list")["batches"]] == [made["id"]]
    shown = run(ctx, "batches", "show", made["id"], "--limit", "4")
    assert shown["total"] == 6 and len(shown["jobs"]) == 4 and shown["next_cursor"] == "4"
    for job in store.claim("w1", 10, ["default"]):
        store.complete("w1", job, "{}")
    sealed = run(ctx, "batches", "seal", made["id"])
    assert sealed["state"] == "settled" and sealed["on_complete"]["created"] is True
    with pytest.raises(ApiError) as refused:
        api.add_to_batch(made["id"], [JobRequest("echo")])
    assert refused.value.code == "batch_sealed"


def test_the_client_retries_a_create_with_the_same_key(api: Client) -> None:
    first = api.create_batch([JobRequest("echo")], idempotency_key="k-1")
    again = api.create_batch([JobRequest("echo")], idempotency_key="k-1")
    assert again["id"] == first["id"] and again["total"] == 1


def test_the_human_table_shows_a_progress_bar() -> None:
    text = cli_batches.table(
        [{"id": "b1", "state": "sealed", "total": 4, "progress": 0.5,
          "counts": {"active": 2, "completed": 2, "failed": 0, "cancelled": 0}}]
    )  # fmt: skip
    assert "[##########----------]  50%" in text


def test_show_lists_the_members_by_their_status_now() -> None:
    text = cli_batches.detail(
        {"id": "b1", "state": "sealed", "total": 4, "progress": 0.25,
         "counts": {"active": 3, "completed": 0, "failed": 1, "cancelled": 0},
         "statuses": {"waiting": 0, "scheduled": 0, "pending": 2, "processing": 0,
                      "completed": 1, "failed": 0, "cancelled": 1}}
    )  # fmt: skip
    now = [line for line in text.splitlines() if line.startswith("now")]
    assert now and now[0].split(None, 1)[1].strip() == (
        "waiting 0  scheduled 0  pending 2  processing 0  completed 1  failed 0  cancelled 1"
    )
