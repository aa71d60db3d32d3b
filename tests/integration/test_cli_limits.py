"""`workstream limits show|set|clear QUEUE` through the real client and API (in process, over
WSGI), and the client's limits methods."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest

from tests.integration import api_fixtures
from workstream.cli.commands import EXIT_OK, Context, build_parser
from workstream.client import Client
from workstream.client.calls import JobRequest
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


def test_set_show_clear(ctx: Context) -> None:
    none = {"queue": "default", "rate": None, "concurrency": None, "group_concurrency": None}
    assert run(ctx, "limits", "show", "default") == none
    set_ = run(ctx, "limits", "set", "default", "--rate", "50/s", "--group-concurrency", "1")
    assert set_ == {**none, "rate": "50/s", "group_concurrency": 1}
    assert run(ctx, "limits", "show", "default") == set_
    assert run(ctx, "limits", "clear", "default") == {"queue": "default", "cleared": True}
    assert run(ctx, "limits", "show", "default") == none


def test_a_refused_limit_surfaces_the_api_error_code(ctx: Context) -> None:
    with pytest.raises(ApiError) as caught:
        run(ctx, "limits", "set", "default", "--rate", "fast")
    assert caught.value.code == "validation_error"
    with pytest.raises(ApiError) as caught:
        run(ctx, "limits", "show", "nowhere")
    assert caught.value.code == "queue_not_found"


def test_the_client_submits_a_group(ctx: Context) -> None:
    job = ctx.client.submit_many([JobRequest(type="echo", group="customer-7")])
    assert ctx.client.get(job[0].id).raw["group"] == "customer-7"
