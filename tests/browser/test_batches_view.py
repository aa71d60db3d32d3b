"""The batches pages (issue 21): a batch's progress as its members end, and its callback."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.dashboard import Dashboard
from tests.browser.live import Live, wait_status

pytestmark = pytest.mark.browser

QUEUES = ["batch"]


def post(live: Live, path: str, body: Any) -> dict[str, Any]:
    status, answer, _ = live.api.request("POST", path, body)
    assert status in (200, 201), (status, answer)
    return dict(answer)


def test_a_batch_shows_its_progress_and_links_its_callback_once_settled(
    dashboard: Dashboard, live: Live
) -> None:
    jobs: list[dict[str, Any]] = [
        {"type": "echo", "queue": "batch", "payload": {"i": i}} for i in range(3)
    ]
    jobs.append({"type": "fail", "queue": "batch", "max_attempts": 1})
    batch = post(
        live,
        "/batches",
        {"open": True, "jobs": jobs, "on_complete": {"type": "echo", "queue": "batch"}},
    )
    for job in batch["jobs"]:
        wait_status(live.api, job["id"], "failed" if job is batch["jobs"][-1] else "completed")

    page = dashboard.open("#/batches")
    row = page.get_by_test_id(f"batch-row-{batch['id']}")
    expect(row).to_be_visible()
    expect(page.get_by_test_id(f"batch-state-{batch['id']}")).to_have_text("open")
    expect(page.get_by_test_id(f"batch-total-{batch['id']}")).to_have_text("4")
    expect(page.get_by_test_id(f"batch-progress-{batch['id']}")).to_have_attribute(
        "data-progress", "1"
    )
    dashboard.snap("list")

    page.get_by_test_id(f"batch-link-{batch['id']}").click()
    expect(page.get_by_test_id("batch-page")).to_be_visible()
    expect(page.get_by_test_id("batch-completed")).to_have_text("3")
    expect(page.get_by_test_id("batch-failed")).to_have_text("1")
    for name, count in (("pending", "0"), ("processing", "0"), ("completed", "3"), ("failed", "1")):
        expect(page.get_by_test_id(f"batch-now-{name}")).to_have_attribute("data-count", count)
    expect(page.get_by_test_id("batch-on-complete")).to_contain_text("when the batch settles")
    expect(page.get_by_test_id(f"batch-member-{batch['jobs'][0]['id']}")).to_contain_text(
        "completed"
    )

    page.get_by_test_id(f"batch-member-{batch['jobs'][0]['id']}").get_by_role("link").click()
    expect(page.get_by_test_id("job-batch-link")).to_have_text(batch["id"])
    page.get_by_test_id("job-batch-link").click()
    expect(page.get_by_test_id("batch-page")).to_be_visible()

    post(live, f"/batches/{batch['id']}/seal", {})
    expect(page.get_by_test_id("batch-state")).to_have_text("settled")
    expect(page.get_by_test_id("batch-on-complete").get_by_role("link")).to_be_visible()
    dashboard.snap("settled")


def test_an_unknown_batch_says_so(dashboard: Dashboard) -> None:
    dashboard.expect_failed_loads(404)
    page = dashboard.open("#/batches/" + "0" * 32)
    expect(page.get_by_test_id("batch-not-found")).to_be_visible()
