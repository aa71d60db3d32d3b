"""The dashboard tells the truth at a glance: charts that start with the server's record, busy
slots as they are, queues nobody serves flagged, and every attempt of a job with its traceback."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.dashboard import Dashboard
from tests.browser.live import Live, get_job, submit, wait_status
from tests.support.stack import wait_until

pytestmark = pytest.mark.browser

QUEUES = ["glance", "busy", "history"]
RUN_S = 8.0
NO_VALUE = "\N{EN DASH}"  # what the dashboard shows for a figure it does not have


def metrics_json(live: Live) -> dict[str, object]:
    status, body, _ = live.api.request("GET", "/metrics", headers={"Accept": "application/json"})
    assert status == 200, (status, body)
    return dict(body)


def test_charts_show_the_activity_from_before_the_page_opened(
    dashboard: Dashboard, live: Live
) -> None:
    jobs = [submit(live.api, "echo", {"n": n}, queue="glance") for n in range(5)]
    jobs.append(submit(live.api, "fail", {"permanent": True}, queue="glance"))
    for job in jobs[:-1]:
        wait_status(live.api, job["id"], "completed")
    wait_status(live.api, jobs[-1]["id"], "failed")
    completed = metrics_json(live)["jobs_completed_total"]

    page = dashboard.open()

    chart = page.get_by_test_id("throughput-chart")
    expect(chart).to_have_attribute("data-state", "data")
    assert int(str(chart.get_attribute("data-history-points"))) >= 1
    expect(page.get_by_test_id("throughput-total-completed")).to_have_text(str(completed))
    expect(page.get_by_test_id("throughput-total-failed")).not_to_have_text("0")
    expect(page.get_by_test_id("run-p50")).not_to_have_text(NO_VALUE)
    dashboard.snap()


def test_the_busy_count_equals_the_jobs_running(dashboard: Dashboard, live: Live) -> None:
    running = [submit(live.api, "sleep", {"seconds": RUN_S}, queue="busy") for _ in range(3)]
    for job in running:
        wait_status(live.api, job["id"], "processing")
    worker_id = get_job(live.api, running[0]["id"])["worker"]

    page = dashboard.open()

    expect(page.get_by_test_id(f"worker-slots-{worker_id}")).to_have_attribute("data-busy", "3")
    expect(page.get_by_test_id("stat-busy")).to_have_text("3 / 4")
    expect(page.get_by_test_id("stat-in-progress")).to_have_text("3")
    dashboard.snap()
    for job in running:  # leave the slots free for the next test
        wait_status(live.api, job["id"], "completed", timeout_s=RUN_S + 10)


def test_a_queue_with_pending_jobs_and_no_live_worker_is_flagged(
    dashboard: Dashboard, live: Live
) -> None:
    submit(live.api, "echo", {}, queue="orphan")  # the worker serves only QUEUES

    page = dashboard.open()

    expect(page.get_by_test_id("queue-unserved-orphan")).to_be_visible()
    expect(page.get_by_test_id("alert-unserved-orphan")).to_contain_text("no live worker")
    expect(page.get_by_test_id("queue-row-glance")).to_be_visible()
    expect(page.get_by_test_id("queue-unserved-glance")).to_be_hidden()
    dashboard.snap()


def test_the_job_page_shows_each_attempt_with_its_traceback(
    dashboard: Dashboard, live: Live
) -> None:
    job = submit(live.api, "fail", {"times": 1}, queue="history", max_attempts=2)
    done = wait_status(live.api, job["id"], "completed")
    assert wait_until(lambda: len(get_job(live.api, job["id"]).get("history", [])) == 2, 5, 0.1)

    page = dashboard.open(f"#/jobs/{job['id']}")

    expect(page.get_by_test_id("job-history").locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("history-outcome-1")).to_have_text("failed")
    expect(page.get_by_test_id("history-outcome-2")).to_have_text("completed")
    expect(page.get_by_test_id("history-worker-1")).to_have_text(str(done["worker"]))
    expect(page.get_by_test_id("history-error-1")).not_to_have_text(NO_VALUE)
    traceback = page.get_by_test_id("history-traceback-1")
    expect(traceback.locator("pre")).to_be_hidden()
    traceback.locator("summary").click()
    expect(traceback.locator("pre")).to_contain_text("Traceback")
    expect(page.get_by_test_id("history-traceback-2")).to_have_count(0)
    dashboard.snap()


def test_a_type_no_live_worker_handles_is_flagged_on_its_queue(
    dashboard: Dashboard, live: Live
) -> None:
    submit(live.api, "no_such_type", {}, queue="glance", max_attempts=1)

    page = dashboard.open()

    expect(page.get_by_test_id("queue-unhandled-glance")).to_contain_text("no_such_type")
    expect(page.get_by_test_id("alert-unhandled-glance")).to_contain_text("no_such_type")
    expect(page.get_by_test_id("queue-unhandled-busy")).to_be_hidden()
    dashboard.snap()


def test_the_job_page_shows_the_attempt_running_now_until_it_ends(
    dashboard: Dashboard, live: Live
) -> None:
    job = submit(live.api, "sleep", {"seconds": 5}, queue="history")
    running = wait_status(live.api, job["id"], "processing")

    page = dashboard.open(f"#/jobs/{job['id']}")

    expect(page.get_by_test_id("history-outcome-1")).to_have_text("running")
    expect(page.get_by_test_id("history-worker-1")).to_have_text(str(running["worker"]))
    expect(page.get_by_test_id("history-outcome-1")).to_have_text("completed")
    expect(page.get_by_test_id("job-history").locator("tbody tr")).to_have_count(1)
