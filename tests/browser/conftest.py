"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, one live stack
(workstream-api + workstream-worker, own NAMESPACE) per test module, one fresh browser per test.

A test module lists the queues its worker serves in a module-level `QUEUES` and may name extra
handler modules in `HANDLERS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    ConsoleMessage,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.browser.chromium import ChromiumUnavailable, ensure_chromium, open_context
from tests.browser.dashboard import Dashboard
from tests.browser.live import Live
from tests.support.redis_server import RedisServer
from tests.support.stack import REPO, Stack

OUTPUT = REPO / "test-output" / "browser"
EXPECT_TIMEOUT_MS = 10_000
ACTION_TIMEOUT_MS = 10_000
NAVIGATION_TIMEOUT_MS = 15_000
LAPTOP = ViewportSize(width=1280, height=800)

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    try:
        return ensure_chromium()
    except ChromiumUnavailable as exc:
        pytest.skip(f"browser tests need Chromium: {exc}")


@pytest.fixture(scope="session")
def playwright_driver(chromium_executable: str) -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100]


@pytest.fixture(scope="module")
def live(redis_server: RedisServer, request: pytest.FixtureRequest) -> Iterator[Live]:
    """workstream-api on a free loopback port and one workstream-worker, in this module's
    own namespace, serving the module's QUEUES."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    queues: list[str] = list(getattr(request.module, "QUEUES", ["default"]))
    handlers: list[str] = list(getattr(request.module, "HANDLERS", []))
    # QUEUE_SHARDS, when the module sets it: one worker process per shard (WORKER_QUEUES).
    shards: str = getattr(request.module, "QUEUE_SHARDS", "")
    worker_queues: list[list[str]] = list(getattr(request.module, "WORKER_QUEUES", [queues]))
    stack = Stack(
        redis_server.url,
        OUTPUT / "logs" / module,
        env={
            "NAMESPACE": f"browser-{module}",
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "info",
            "RETRY_BACKOFF": "0s",
            "SHUTDOWN_GRACE": "2s",
            # Configured queues always exist, so a test may pause one before it holds a job.
            "QUEUES": ",".join(queues),
            **({"QUEUE_SHARDS": shards} if shards else {}),
        },
    )
    try:
        api = stack.start_api()
        workers = [
            stack.start_worker(
                {
                    "QUEUES": ",".join(mine),
                    "WORKER_COUNT": "4",
                    "WORKER_HANDLERS": ",".join(handlers),
                }
            )
            for mine in worker_queues
        ]
        yield Live(stack, api, workers[0])
    finally:
        stack.stop_all(timeout_s=10)


@pytest.fixture
def dashboard(
    playwright_driver: Playwright,
    chromium_executable: str,
    live: Live,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Dashboard]:
    """A fresh Chromium (new profile) on a laptop-sized page. Fails the test on any console
    error or uncaught exception, except the browser's own lines for 4xx answers the test
    declared deliberate (Dashboard.expect_failed_loads)."""
    context = open_context(playwright_driver, chromium_executable, tmp_path / "profile", LAPTOP)
    try:
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
        page = context.pages[0] if context.pages else context.new_page()
        board = Dashboard(page, live, OUTPUT / f"{_safe_name(request.node.name)}.png")
        page.on("console", _collect_errors(board.console_errors))
        page.on("pageerror", lambda exc: board.page_errors.append(str(exc)))
        yield board
        unexpected = board.unexpected_console_errors()
        assert not unexpected, f"console errors: {unexpected}"
    finally:
        context.close()


def _collect_errors(into: list[str]) -> Callable[[ConsoleMessage], None]:
    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            into.append(message.text)

    return on_console
