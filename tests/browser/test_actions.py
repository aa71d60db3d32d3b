"""Operator actions from the dashboard: retrying a failed job, pausing and resuming a queue."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.dashboard import Dashboard
from tests.browser.live import Live, get_job, submit, wait_status
from tests.support.stack import wait_until

pytestmark = pytest.mark.browser

QUEUES = ["retry", "pausable", "stoppable"]
HANDLERS = ["tests.browser.handlers"]
PAUSED_HOLD_S = 3.0


def test_retrying_a_failed_job_from_its_page_makes_it_complete(
    dashboard: Dashboard, live: Live
) -> None:
    # Fails permanently on its first run only: the retried run succeeds.
    job = submit(live.api, "fail_first_run", {"note": "retry me"}, queue="retry", max_attempts=1)
    wait_status(live.api, job["id"], "failed")

    page = dashboard.open(f"#/jobs/{job['id']}")
    expect(page.get_by_test_id("job-status")).to_have_text("failed")
    expect(page.get_by_test_id("job-error")).to_contain_text("first run")
    dashboard.snap("failed")
    page.get_by_test_id("job-retry").click()
    dashboard.confirm()

    expect(page.get_by_test_id("job-status")).to_have_text("completed")
    expect(page.get_by_test_id("job-result")).to_contain_text('"runs": 2')
    expect(page.get_by_test_id("job-attempts")).to_have_text("1 / 1")
    expect(page.get_by_test_id("job-retry")).to_be_disabled()
    dashboard.snap()


def test_cancelling_a_running_job_asks_it_to_stop_and_it_ends_cancelled(
    dashboard: Dashboard, live: Live
) -> None:
    job = submit(live.api, "report_until_cancelled", queue="stoppable")
    assert wait_until(lambda: get_job(live.api, job["id"]).get("progress") is not None, 30)

    page = dashboard.open(f"#/jobs/{job['id']}")
    expect(page.get_by_test_id("job-status")).to_have_text("processing")
    expect(page.get_by_test_id("job-progress")).to_have_text("45% — 3 of 10 files")
    expect(page.get_by_test_id("job-cancelling")).to_be_hidden()
    page.get_by_test_id("job-cancel").click()
    dashboard.confirm()

    # 202 answers with the job still processing: the badge shows until the handler stops.
    expect(page.get_by_test_id("job-cancelling")).to_be_visible()
    expect(page.get_by_test_id("job-status")).to_have_text("processing")
    expect(page.get_by_test_id("job-cancel")).to_be_disabled()
    dashboard.snap("cancelling")
    expect(page.get_by_test_id("job-status")).to_have_text("cancelled", timeout=15_000)
    expect(page.get_by_test_id("job-cancelling")).to_be_hidden()
    assert get_job(live.api, job["id"])["status"] == "cancelled"
    dashboard.snap()


def test_pausing_a_queue_stops_its_jobs_from_being_claimed(
    dashboard: Dashboard, live: Live
) -> None:
    first = submit(live.api, "echo", {"n": 0}, queue="pausable")
    wait_status(live.api, first["id"], "completed")
    page = dashboard.open()

    page.get_by_test_id("pause-pausable").click()
    dashboard.confirm()
    expect(page.get_by_test_id("queue-paused-pausable")).to_have_attribute("data-paused", "true")
    held = [submit(live.api, "echo", {"n": n}, queue="pausable")["id"] for n in range(1, 4)]
    claimed = wait_until(
        lambda: any(get_job(live.api, i)["status"] != "pending" for i in held), PAUSED_HOLD_S, 0.2
    )
    assert not claimed, [get_job(live.api, i)["status"] for i in held]
    expect(page.get_by_test_id("queue-pending-pausable")).to_have_text("3")
    dashboard.snap("paused")

    page.get_by_test_id("resume-pausable").click()
    dashboard.confirm()
    expect(page.get_by_test_id("queue-paused-pausable")).to_have_attribute("data-paused", "false")
    for job_id in held:
        wait_status(live.api, job_id, "completed")
    expect(page.get_by_test_id("queue-pending-pausable")).to_have_text("0")
    dashboard.snap()
