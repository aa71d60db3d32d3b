"""With API_TOKEN set, the dashboard asks for the token before it shows anything."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.dashboard import Dashboard
from tests.browser.live import Live
from tests.support.stack import Api

pytestmark = pytest.mark.browser

QUEUES = ["default"]
TOKEN = "secret"


@pytest.fixture(scope="module")
def guarded_api(live: Live) -> Iterator[Api]:
    """A second workstream-api on the same namespace, with API_TOKEN set."""
    api = live.stack.start_api({"API_TOKEN": TOKEN})
    yield api
    api.signal(signal.SIGTERM)
    if api.wait(10) is None:
        api.signal(signal.SIGKILL)
        api.wait(5)


def test_the_token_prompt_appears_and_the_right_token_loads_the_overview(
    dashboard: Dashboard, guarded_api: Api
) -> None:
    dashboard.expect_failed_loads(401)  # the dashboard's first call, without a token
    page = dashboard.page
    page.goto(f"{guarded_api.url}/ui#/overview")

    expect(page.get_by_test_id("token-prompt")).to_be_visible()
    expect(page.get_by_test_id("token-error")).to_be_hidden()
    dashboard.snap("prompt", full_page=False)
    page.get_by_test_id("token-input").fill(TOKEN)
    page.get_by_test_id("token-submit").click()

    expect(page.get_by_test_id("token-prompt")).to_be_hidden()
    expect(page.get_by_test_id("queue-row-default")).to_be_visible()
    expect(page.get_by_test_id("stat-workers")).to_have_text("1")
    expect(page.get_by_test_id("token-clear")).to_be_visible()
    expect(page.get_by_test_id("error-banner")).to_be_hidden()
    dashboard.snap()


def test_a_wrong_token_keeps_the_prompt_open_with_a_message(
    dashboard: Dashboard, guarded_api: Api
) -> None:
    dashboard.expect_failed_loads(401)  # the dashboard's first call, without a token
    page = dashboard.page
    page.goto(f"{guarded_api.url}/ui#/overview")

    page.get_by_test_id("token-input").fill("not-the-token")
    page.get_by_test_id("token-submit").click()

    expect(page.get_by_test_id("token-error")).to_contain_text("not accepted")
    expect(page.get_by_test_id("token-prompt")).to_be_visible()
    dashboard.snap(full_page=False)
