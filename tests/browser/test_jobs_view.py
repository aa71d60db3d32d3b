"""The jobs view: filtering by status, queue and type, and paging with a small page size."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.dashboard import Dashboard
from tests.browser.live import Live, set_paused, submit, wait_status

pytestmark = pytest.mark.browser

QUEUES = ["mixed", "held", "paging"]


@pytest.fixture(scope="module")
def jobs(live: Live) -> Iterator[dict[str, list[str]]]:
    """Settled jobs of each kind: completed echoes and a failed `fail` in "mixed", pending
    echoes and a `sleep` in the paused queue "held"."""
    set_paused(live.api, "held", True)
    completed = [submit(live.api, "echo", {"n": n}, queue="mixed")["id"] for n in range(2)]
    failed = [submit(live.api, "fail", {"permanent": True}, queue="mixed")["id"]]
    held = [submit(live.api, "echo", {"n": n}, queue="held")["id"] for n in range(2)]
    held_sleep = [submit(live.api, "sleep", {"seconds": 0}, queue="held")["id"]]
    for job_id in completed:
        wait_status(live.api, job_id, "completed")
    wait_status(live.api, failed[0], "failed")
    yield {"completed": completed, "failed": failed, "held": held + held_sleep, "sleep": held_sleep}


def shown_ids(page: Page) -> set[str]:
    """Ids of the job rows on the current page (after the list has loaded)."""
    expect(page.get_by_test_id("jobs-view").get_by_text("Loading…")).to_have_count(0)
    rows = page.get_by_test_id("jobs-table").locator("tbody tr")
    return {
        str(testid).removeprefix("job-row-")
        for testid in rows.evaluate_all("rows => rows.map(r => r.dataset.testid)")
    }


def expect_only_status(page: Page, status: str) -> None:
    badges = page.get_by_test_id("jobs-table").locator("[data-testid^='job-status-']")
    for text in badges.all_inner_texts():
        assert text == status


def test_jobs_view_filters_by_status(dashboard: Dashboard, jobs: dict[str, list[str]]) -> None:
    page = dashboard.open("#/jobs")
    page.get_by_test_id("filter-status").select_option("failed")
    page.get_by_test_id("filter-apply").click()

    expect(page).to_have_url(re.compile(r"#/jobs\?status=failed$"))
    expect(page.get_by_test_id(f"job-row-{jobs['failed'][0]}")).to_be_visible()
    ids = shown_ids(page)
    assert ids.isdisjoint(jobs["completed"] + jobs["held"])
    expect_only_status(page, "failed")
    dashboard.snap()


def test_jobs_view_filters_by_queue(dashboard: Dashboard, jobs: dict[str, list[str]]) -> None:
    page = dashboard.open("#/jobs")
    page.get_by_test_id("filter-queue").fill("held")
    page.get_by_test_id("filter-apply").click()

    expect(page.get_by_test_id("jobs-table").locator("tbody tr")).to_have_count(3)
    assert shown_ids(page) == set(jobs["held"])
    expect_only_status(page, "pending")
    dashboard.snap()


def test_jobs_view_filters_by_type(dashboard: Dashboard, jobs: dict[str, list[str]]) -> None:
    page = dashboard.open("#/jobs")
    page.get_by_test_id("filter-type").fill("sleep")
    page.get_by_test_id("filter-apply").click()

    expect(page.get_by_test_id("jobs-table").locator("tbody tr")).to_have_count(1)
    assert shown_ids(page) == set(jobs["sleep"])
    dashboard.snap()


def test_jobs_view_shows_an_empty_state_when_nothing_matches(
    dashboard: Dashboard, jobs: dict[str, list[str]]
) -> None:
    page = dashboard.open("#/jobs?queue=held&status=completed")

    expect(page.get_by_test_id("jobs-empty")).to_be_visible()
    expect(page.get_by_test_id("jobs-table").locator("tbody tr")).to_have_count(0)
    dashboard.snap()


def test_jobs_view_pages_through_results_with_next_page(dashboard: Dashboard, live: Live) -> None:
    set_paused(live.api, "paging", True)
    submitted = {submit(live.api, "echo", {"n": n}, queue="paging")["id"] for n in range(5)}

    page = dashboard.open("#/jobs?queue=paging&limit=2")
    seen: list[set[str]] = []
    for number, size in enumerate([2, 2, 1], start=1):
        expect(page.get_by_test_id("page-info")).to_have_text(f"Page {number}")
        expect(page.get_by_test_id("jobs-table").locator("tbody tr")).to_have_count(size)
        seen.append(shown_ids(page))
        dashboard.snap(f"page-{number}")
        if number < 3:
            page.get_by_test_id("next-page").click()

    expect(page.get_by_test_id("next-page")).to_be_disabled()
    assert set().union(*seen) == submitted
    assert sum(len(ids) for ids in seen) == len(submitted)  # no job on two pages
    page.get_by_test_id("prev-page").click()
    expect(page.get_by_test_id("page-info")).to_have_text("Page 2")
    assert shown_ids(page) == seen[1]
