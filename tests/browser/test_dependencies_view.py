"""A job's page shows its parents and children as links, and what it still waits for."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.dashboard import Dashboard
from tests.browser.live import Live, set_paused, submit

pytestmark = pytest.mark.browser

QUEUES = ["deps-held"]


def test_a_waiting_job_links_to_its_parent_and_the_parent_back_to_it(
    dashboard: Dashboard, live: Live
) -> None:
    set_paused(live.api, "deps-held", True)  # the parent stays pending: the child waits
    parent = submit(live.api, "echo", {"n": 1}, queue="deps-held", id="ui-parent")
    child = submit(
        live.api, "echo", {"n": 2}, queue="deps-held", id="ui-child", depends_on=[parent["id"]]
    )
    assert child["status"] == "waiting"

    page = dashboard.open("#/jobs/ui-child")
    expect(page.get_by_test_id("job-status")).to_have_text("waiting")
    expect(page.get_by_test_id("job-depends-on")).to_contain_text("1 left, on failure: cancel")
    expect(page.get_by_test_id("job-cancel")).to_be_enabled()
    dashboard.snap("waiting")
    page.get_by_test_id("job-depends-on").get_by_test_id("job-link").click()

    expect(page.get_by_test_id("job-id")).to_have_text("ui-parent")
    expect(page.get_by_test_id("job-children")).to_have_text("ui-child")
    set_paused(live.api, "deps-held", False)
