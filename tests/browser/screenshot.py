"""Regenerates docs/images/dashboard-overview.png and dashboard-job-history.png from a real run.

    .venv/bin/python -m tests.browser.screenshot [--seconds 120]

Starts a private redis-server, one workstream-api and three workstream-workers (loopback only),
keeps a mixed load flowing (quick and slow jobs, retried and failed ones, delayed ones, one
paused queue), opens the overview in headless Chromium for the last few seconds of it (the
charts show what the server recorded before the page opened, then its own samples), then saves
a laptop-sized screenshot there and under test-output/browser/, and one of the page of a job
that failed once and then completed, its first attempt's traceback open. Stops everything it
started.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, ViewportSize, expect, sync_playwright

from tests.browser.chromium import ensure_chromium, open_context
from tests.browser.live import set_paused
from tests.support.redis_server import RedisServer
from tests.support.stack import REPO, Api, Stack

TARGET = REPO / "docs" / "images" / "dashboard-overview.png"
JOB_TARGET = TARGET.with_name("dashboard-job-history.png")
OUTPUT = REPO / "test-output" / "browser"
VIEWPORT = ViewportSize(width=1440, height=900)
WORKERS = [
    {"QUEUES": "emails,default", "WORKER_COUNT": "6"},
    {"QUEUES": "default,thumbnails", "WORKER_COUNT": "6"},
    {"QUEUES": "thumbnails,reports,emails", "WORKER_COUNT": "4"},
]
TICK_S = 0.5
SLOW_LEAD_S = 6.0
OPEN_LEAD_S = 10.0  # the page's own samples at the charts' right edge


def _batch(api: Api, jobs: list[dict[str, Any]]) -> None:
    status, body, _ = api.request("POST", "/jobs/batch", {"jobs": jobs})
    if status != 201:
        raise RuntimeError(f"POST /jobs/batch answered {status}: {body}")


def _tick(api: Api, rng: random.Random, elapsed_s: float) -> None:
    """One half-second of load: a burst that swells and ebbs, so the charts have a shape."""
    wave = 1.0 + 0.8 * abs(((elapsed_s / 20.0) % 2.0) - 1.0)
    jobs: list[dict[str, Any]] = []
    for _ in range(round(4 * wave)):
        jobs.append({"type": "echo", "queue": "emails", "payload": {"to": "user@example.com"}})
    for _ in range(round(3 * wave)):
        seconds = round(rng.uniform(0.05, 0.6), 3)
        jobs.append({"type": "sleep", "queue": "thumbnails", "payload": {"seconds": seconds}})
    for _ in range(2):
        seconds = round(rng.uniform(0.01, 0.2), 3)
        jobs.append({"type": "sleep", "queue": "default", "payload": {"seconds": seconds}})
    if rng.random() < 0.3:
        jobs.append({"type": "fail", "queue": "default", "payload": {"times": 1}})
    if rng.random() < 0.12:
        jobs.append({"type": "fail", "queue": "emails", "payload": {"permanent": True}})
    if rng.random() < 0.2:
        jobs.append({"type": "echo", "queue": "emails", "payload": {}, "delay": 3600})
    if rng.random() < 0.3:
        jobs.append({"type": "echo", "queue": "reports", "payload": {"report": "weekly"}})
    _batch(api, jobs)


def _retried_job(api: Api) -> str:
    """A `fail` job that failed its first attempt and completed its second."""
    status, body, _ = api.request("GET", "/jobs?type=fail&status=completed&limit=1")
    if status != 200 or not body["jobs"]:
        raise RuntimeError(f"no completed 'fail' job to show: {status} {body}")
    return str(body["jobs"][0]["id"])


def _job_page(page: Page, api: Api, target: Path) -> None:
    page.goto(f"{api.url}/ui#/jobs/{_retried_job(api)}")
    expect(page.get_by_test_id("history-row-2")).to_be_visible(timeout=15_000)
    page.get_by_test_id("history-traceback-1").locator("summary").click()
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top of the picture
    shot = OUTPUT / target.name
    page.screenshot(path=str(shot), full_page=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, target)


def capture(seconds: float, target: Path, job_target: Path = JOB_TARGET) -> Path:
    redis_server = RedisServer().start()
    logs = Path(tempfile.mkdtemp(prefix="ws-screenshot-"))
    stack = Stack(
        redis_server.url,
        logs,
        env={
            "NAMESPACE": "screenshot",
            "RETRY_BACKOFF": "2s",
            "SHUTDOWN_GRACE": "2s",
            "WORKER_TTL": "6s",  # heartbeats (and the busy-slot counts) every 2 s
        },
    )
    try:
        api = stack.start_api()
        for env in WORKERS:
            stack.start_worker(env)
        _batch(api, [{"type": "echo", "queue": "reports", "payload": {}}])
        set_paused(api, "reports", True)  # one paused queue, its jobs waiting
        with sync_playwright() as playwright:
            context = open_context(
                playwright, ensure_chromium(), logs / "profile", VIEWPORT, device_scale_factor=1
            )
            try:
                page = context.pages[0] if context.pages else context.new_page()
                rng = random.Random(7)
                started = time.monotonic()
                slow_sent = opened = False
                while (elapsed := time.monotonic() - started) < seconds:
                    _tick(api, rng, elapsed)
                    if not opened and elapsed >= seconds - OPEN_LEAD_S:
                        page.goto(f"{api.url}/ui#/overview")
                        expect(page.get_by_test_id("stat-workers")).to_have_text(
                            str(len(WORKERS)), timeout=15_000
                        )
                        opened = True
                    if not slow_sent and elapsed >= seconds - SLOW_LEAD_S:
                        # Some slow work in flight (and in the heartbeats) for the picture.
                        slow = {"type": "sleep", "queue": "thumbnails", "payload": {"seconds": 15}}
                        _batch(api, [slow] * 5)
                        slow_sent = True
                    time.sleep(TICK_S)
                shot = OUTPUT / "dashboard-overview.png"
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot), full_page=True)
                _job_page(page, api, job_target)
            finally:
                context.close()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
        return target
    finally:
        stack.stop_all(timeout_s=15)
        redis_server.stop()
        shutil.rmtree(redis_server.directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="load before the shot")
    parser.add_argument("--output", type=Path, default=TARGET, help="where the PNG goes")
    args = parser.parse_args(argv)
    path = capture(args.seconds, args.output)
    sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
