"""The operator pages of issue 20: schedules (timing, next and last run, pause from the page)
and a queue's limits (rate, caps, in flight against the cap, parked jobs)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from playwright.sync_api import expect

from tests.browser.dashboard import Dashboard
from tests.browser.live import Live, submit, wait_status
from tests.support.redis_server import RedisServer
from tests.support.stack import Api, wait_until
from workstream.common.keys import Keys

pytestmark = pytest.mark.browser

QUEUES = ["nightly", "limited", "grouped"]
HANDLERS = ["tests.handlers"]
NOTHING = "\u2013"  # the dashboard's dash for no value
KEYS = Keys("browser-test_ops_pages")  # the namespace conftest's `live` gives this module


def put(live: Live, path: str, body: Any) -> dict[str, Any]:
    status, answer, _ = live.api.request("PUT", path, body)
    assert status in (200, 201), (status, answer)
    return dict(answer)


def schedule(live: Live, schedule_id: str) -> dict[str, Any]:
    status, answer, _ = live.api.request("GET", f"/schedules/{schedule_id}")
    assert status == 200, (status, answer)
    return dict(answer)


def test_the_schedules_page_shows_a_schedule_and_pausing_it_there_pauses_it_in_redis(
    dashboard: Dashboard, live: Live, redis_server: RedisServer
) -> None:
    put(
        live,
        "/schedules/nightly-report",
        {"cron": "0 3 * * *", "timezone": "Europe/Berlin", "job": {"type": "echo"}},
    )
    created = schedule(live, "nightly-report")
    page = dashboard.open("#/schedules")

    expect(page.get_by_test_id("schedule-row-nightly-report")).to_be_visible()
    expect(page.get_by_test_id("schedule-timing-nightly-report")).to_have_text("cron 0 3 * * *")
    expect(page.get_by_test_id("schedule-timezone-nightly-report")).to_have_text("Europe/Berlin")
    next_run = page.get_by_test_id("schedule-next-nightly-report")
    expect(next_run).to_have_attribute("data-iso", created["next_run_at"])
    expect(page.get_by_test_id("schedule-paused-nightly-report")).to_have_attribute(
        "data-paused", "false"
    )
    dashboard.snap("active")

    page.get_by_test_id("schedule-pause-nightly-report").click()
    dashboard.confirm()

    expect(page.get_by_test_id("schedule-paused-nightly-report")).to_have_attribute(
        "data-paused", "true"
    )
    expect(page.get_by_test_id("schedule-resume-nightly-report")).to_be_visible()
    expect(next_run).to_have_text(NOTHING)  # a paused schedule has no next run
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert client.hget(KEYS.schedule("nightly-report"), "paused") == "1"
        assert client.zscore(KEYS.schedules_due, "nightly-report") is None  # firers skip it
    finally:
        client.close()
    dashboard.snap()


def test_a_schedules_last_job_links_to_that_jobs_page(dashboard: Dashboard, live: Live) -> None:
    put(live, "/schedules/heartbeat", {"every": "1s", "job": {"type": "echo", "queue": "nightly"}})
    assert wait_until(lambda: schedule(live, "heartbeat")["last_job_id"] is not None, 15, 0.2)
    status, paused, _ = live.api.request("POST", "/schedules/heartbeat/pause")
    assert status == 200, paused  # its last run stays the last while the test looks
    last_job = schedule(live, "heartbeat")["last_job_id"]
    page = dashboard.open("#/schedules")

    expect(page.get_by_test_id("schedule-timing-heartbeat")).to_have_text("every 1s")
    expect(page.get_by_test_id("schedule-timezone-heartbeat")).to_have_text(NOTHING)
    expect(page.get_by_test_id("schedule-last-heartbeat")).not_to_have_text(NOTHING)
    page.get_by_test_id("schedule-last-job-heartbeat").click()
    expect(page.get_by_test_id("job-id")).to_have_text(last_job)
    expect(page.get_by_test_id("job-queue")).to_have_text("nightly")
    live.api.request("DELETE", "/schedules/heartbeat")


def test_the_queue_page_shows_the_queues_limits(dashboard: Dashboard, live: Live) -> None:
    put(live, "/queues/limited/limits", {"rate": "50/s", "concurrency": 3})
    page = dashboard.open()
    page.get_by_test_id("queue-page-link-limited").click()

    expect(page.get_by_test_id("queue-page-name")).to_have_text("limited")
    expect(page.get_by_test_id("limit-rate")).to_have_text("50/s")
    expect(page.get_by_test_id("limit-concurrency")).to_have_text("3")
    expect(page.get_by_test_id("limit-group-concurrency")).to_have_text("none")
    expect(page.get_by_test_id("limit-inflight")).to_have_text("0 / 3")
    expect(page.get_by_test_id("limit-parked")).to_have_text("0")
    dashboard.snap()


def test_the_queue_page_shows_jobs_in_flight_against_the_cap_and_parked_ones(
    dashboard: Dashboard, live: Live
) -> None:
    put(live, "/queues/grouped/limits", {"concurrency": 2, "group_concurrency": 1})
    jobs = [
        submit(live.api, "count_runs", {"sleep": 3}, queue="grouped", group="customer-1")
        for _ in range(3)
    ]
    page = dashboard.open("#/queues/grouped")

    expect(page.get_by_test_id("limit-group-concurrency")).to_have_text("1")
    expect(page.get_by_test_id("limit-inflight")).to_have_text("1 / 2")
    expect(page.get_by_test_id("limit-parked")).to_have_text("2")
    expect(page.get_by_test_id("queue-page-parked")).to_have_text("2")
    dashboard.snap("parked")
    for job in jobs:
        wait_status(live.api, job["id"], "completed", timeout_s=30)
    expect(page.get_by_test_id("limit-parked")).to_have_text("0")
    expect(page.get_by_test_id("limit-inflight")).to_have_text("0 / 2")


def test_the_queue_page_says_when_the_queue_does_not_exist(
    dashboard: Dashboard, live: Live
) -> None:
    dashboard.expect_failed_loads(404)
    page = dashboard.open("#/queues/no-such-queue")
    expect(page.get_by_test_id("queue-not-found")).to_be_visible()
    expect(page.get_by_test_id("error-banner")).to_be_hidden()


def test_the_queue_page_of_a_name_no_queue_can_have_says_so_too(
    dashboard: Dashboard, live: Live
) -> None:
    dashboard.expect_failed_loads(400)
    page = dashboard.open("#/queues/%3Cb%3Enot%20a%20queue!")
    expect(page.get_by_test_id("queue-not-found")).to_contain_text("<b>not a queue!")
    expect(page.get_by_test_id("error-banner")).to_be_hidden()


@pytest.fixture(scope="module")
def scoped_api(live: Live) -> Iterator[Api]:
    """A second workstream-api on the same namespace with scoped tokens: `reader` may only read."""
    api = live.stack.start_api({"API_TOKENS": "read:reader,admin:boss"})
    yield api
    api.signal(signal.SIGTERM)
    if api.wait(10) is None:
        api.signal(signal.SIGKILL)
        api.wait(5)


def test_a_read_only_token_sees_the_schedules_but_cannot_pause_one(
    dashboard: Dashboard, live: Live, scoped_api: Api
) -> None:
    put(live, "/schedules/read-only", {"every": "1h", "job": {"type": "echo"}})
    dashboard.expect_failed_loads(401)  # the first call, before the token is given
    dashboard.expect_failed_loads(403)  # the pause the token may not make
    page = dashboard.page
    page.goto(f"{scoped_api.url}/ui#/schedules")
    page.get_by_test_id("token-input").fill("reader")
    page.get_by_test_id("token-submit").click()
    expect(page.get_by_test_id("schedule-row-read-only")).to_be_visible()

    page.get_by_test_id("schedule-pause-read-only").click()
    dashboard.confirm()

    expect(page.get_by_test_id("error-text")).to_contain_text("insufficient_scope")
    expect(page.get_by_test_id("schedule-paused-read-only")).to_have_attribute(
        "data-paused", "false"
    )
    assert schedule(live, "read-only")["paused"] is False
    live.api.request("DELETE", "/schedules/read-only")
