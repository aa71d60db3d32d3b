"""With QUEUE_SHARDS, the dashboard follows a dependency across shards both ways and shows a
batch that lives in a named shard (its id `<shard>:<32 hex>`)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.dashboard import Dashboard
from tests.browser.live import Live, get_job, set_paused, submit, wait_status
from tests.support.stack import wait_until

pytestmark = pytest.mark.browser

QUEUES = ["near", "far"]
QUEUE_SHARDS = "far:a"
WORKER_QUEUES = [["near"], ["far"]]  # a worker process serves one shard


def test_a_child_in_another_shard_links_to_its_parent_and_the_parent_back_to_it(
    dashboard: Dashboard, live: Live
) -> None:
    set_paused(live.api, "near", True)  # the parent stays pending: the child waits
    parent = submit(live.api, "echo", {"n": 1}, queue="near", id="ui-near-parent")
    child = submit(live.api, "echo", {"n": 2}, queue="far", depends_on=[parent["id"]])
    assert child["status"] == "waiting" and child["id"].startswith("a:")

    # The link is a hand-off the mover performs within a scheduler tick; a pending job's page
    # is not refreshed by it (no event), so wait for it before opening the pages.
    linked = wait_until(
        lambda: get_job(live.api, parent["id"])["children"] == [child["id"]], 10, 0.1
    )
    assert linked, get_job(live.api, parent["id"])

    page = dashboard.open(f"#/jobs/{child['id']}")
    expect(page.get_by_test_id("job-status")).to_have_text("waiting")
    expect(page.get_by_test_id("job-depends-on")).to_contain_text("1 left, on failure: cancel")
    page.get_by_test_id("job-depends-on").get_by_test_id("job-link").click()
    expect(page.get_by_test_id("job-id")).to_have_text("ui-near-parent")
    expect(page.get_by_test_id("job-children")).to_have_text(child["id"])
    dashboard.snap("parent")

    set_paused(live.api, "near", False)
    wait_status(live.api, child["id"], "completed")
    page.get_by_test_id("job-children").get_by_test_id("job-link").click()
    expect(page.get_by_test_id("job-status")).to_have_text("completed")


def test_a_batch_in_a_named_shard_shows_its_progress(dashboard: Dashboard, live: Live) -> None:
    jobs: list[dict[str, Any]] = [
        {"type": "echo", "queue": "far", "payload": {"i": i}} for i in range(2)
    ]
    status, batch, _ = live.api.request(
        "POST", "/batches", {"jobs": jobs, "on_complete": {"type": "echo", "queue": "near"}}
    )
    assert status == 201 and batch["id"].startswith("a:")
    for job in batch["jobs"]:
        wait_status(live.api, job["id"], "completed")

    page = dashboard.open("#/batches")
    expect(page.get_by_test_id(f"batch-row-{batch['id']}")).to_be_visible()
    page.get_by_test_id(f"batch-link-{batch['id']}").click()
    expect(page.get_by_test_id("batch-page")).to_be_visible()
    expect(page.get_by_test_id("batch-completed")).to_have_text("2")
    expect(page.get_by_test_id("batch-state")).to_have_text("settled")
    # The callback's queue is the default shard's: handed off, then run by that shard's worker.
    expect(page.get_by_test_id("batch-on-complete").get_by_role("link")).to_be_visible()
    dashboard.snap("batch")
