"""The overview: queue counts, workers, a clean console, and a layout that fits a phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import ViewportSize, expect

from tests.browser.dashboard import Dashboard
from tests.browser.live import Live, set_paused, submit, wait_status

pytestmark = pytest.mark.browser

QUEUES = ["counts", "console", "phone"]
PHONE = ViewportSize(width=375, height=740)
OVERFLOW_TOLERANCE_PX = 1


def test_overview_shows_queue_counts_after_jobs_are_submitted(
    dashboard: Dashboard, live: Live
) -> None:
    failed = submit(live.api, "fail", {"permanent": True}, queue="counts", max_attempts=1)
    wait_status(live.api, failed["id"], "failed")
    set_paused(live.api, "counts", True)  # nothing more is claimed: the counts hold still
    for n in range(3):
        submit(live.api, "echo", {"n": n}, queue="counts")
    for n in range(2):
        submit(live.api, "echo", {"n": n}, queue="counts", delay=3600)

    page = dashboard.open()

    expect(page.get_by_test_id("queue-pending-counts")).to_have_text("3")
    expect(page.get_by_test_id("queue-scheduled-counts")).to_have_text("2")
    expect(page.get_by_test_id("queue-failed-counts")).to_have_text("1")
    expect(page.get_by_test_id("queue-processing-counts")).to_have_text("0")
    expect(page.get_by_test_id("queue-paused-counts")).to_have_attribute("data-paused", "true")
    expect(page.get_by_test_id("resume-counts")).to_be_visible()
    dashboard.snap()


def test_overview_lists_the_live_worker(dashboard: Dashboard, live: Live) -> None:
    page = dashboard.open()

    expect(page.get_by_test_id("stat-workers")).to_have_text("1")
    rows = page.get_by_test_id("workers-table").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(str(live.worker.pid))
    expect(page.get_by_test_id("workers-empty")).to_be_hidden()
    dashboard.snap()


def test_every_view_loads_without_console_errors(dashboard: Dashboard, live: Live) -> None:
    done = submit(live.api, "echo", {"hello": "console"}, queue="console")
    wait_status(live.api, done["id"], "completed")

    page = dashboard.open()
    expect(page.get_by_test_id("queue-row-console")).to_be_visible()
    expect(page.get_by_test_id("last-updated")).to_contain_text("Updated")
    dashboard.snap("overview")
    page.get_by_test_id("nav-jobs").click()
    expect(page.get_by_test_id(f"job-row-{done['id']}")).to_be_visible()
    dashboard.snap("jobs")
    page.get_by_test_id(f"job-link-{done['id']}").click()
    expect(page.get_by_test_id("job-status")).to_have_text("completed")
    dashboard.snap("job")

    expect(page.get_by_test_id("error-banner")).to_be_hidden()
    assert dashboard.unexpected_console_errors() == []


def test_overview_fits_a_phone_screen_without_horizontal_scrolling(
    dashboard: Dashboard, live: Live
) -> None:
    submit(live.api, "echo", {"n": 1}, queue="phone")
    page = dashboard.page
    page.set_viewport_size(PHONE)
    dashboard.open()
    expect(page.get_by_test_id("queue-row-phone")).to_be_visible()
    expect(page.get_by_test_id("stat-workers")).to_have_text("1")

    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= PHONE["width"] + OVERFLOW_TOLERANCE_PX, scroll_width
    dashboard.snap()
