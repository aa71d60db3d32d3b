"""A live job's page follows the event stream: it reloads the job once per change, at once,
and reads nothing while the job sits still (it polled GET /jobs/{id} every 3 s before)."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Request, expect

from tests.browser.dashboard import Dashboard
from tests.browser.live import Live, submit, wait_status

pytestmark = pytest.mark.browser

QUEUES = ["later"]
DELAY_S = 8.0  # the page polled every 3 s before: 3 reads while it waits


def test_a_scheduled_jobs_page_waits_on_events_not_a_timer(
    dashboard: Dashboard, live: Live
) -> None:
    job = submit(live.api, "echo", {"n": 1}, queue="later", delay=DELAY_S)
    reads: list[float] = []

    def seen(request: Request) -> None:
        if request.url.endswith(f"/jobs/{job['id']}") and request.method == "GET":
            reads.append(time.monotonic())

    dashboard.page.on("request", seen)
    page = dashboard.open(f"#/jobs/{job['id']}")
    expect(page.get_by_test_id("job-status")).to_have_text("scheduled")
    time.sleep(DELAY_S - 1.0)
    # Still scheduled: no timer read it again (one more read on opening, at most, when the
    # event that made the state shown looks new to the page).
    assert len(reads) <= 2
    wait_status(live.api, job["id"], "completed")
    expect(page.get_by_test_id("job-status")).to_have_text("completed", timeout=5_000)
    # One read per change at most: promoted, started, completed (events may come together).
    assert len(reads) <= 5
