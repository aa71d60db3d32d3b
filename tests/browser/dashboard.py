"""The page object every browser test drives: one dashboard page plus its console record."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.live import Live

# The browser's own console line for every HTTP error answer (the dashboard logs nothing itself).
FAILED_LOAD = re.compile(
    r"^Failed to load resource: the server responded with a status of (\d{3})\b"
)


@dataclass
class Dashboard:
    """One page in a fresh Chromium, plus what the test needs around it."""

    page: Page
    live: Live
    shots: Path
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    deliberate_4xx: set[int] = field(default_factory=set)

    def open(self, route: str = "#/overview") -> Page:
        self.page.goto(f"{self.live.ui_url}{route}")
        return self.page

    def snap(self, suffix: str = "", full_page: bool = True) -> Path:
        """Saves a screenshot as test-output/browser/<test-name>[-<suffix>].png (the whole
        page, or just the viewport: a modal overlay covers only that)."""
        path = self.shots.with_name(f"{self.shots.stem}{'-' + suffix if suffix else ''}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def confirm(self) -> None:
        """Accepts the dashboard's confirmation dialog."""
        expect(self.page.get_by_test_id("confirm-dialog")).to_be_visible()
        self.page.get_by_test_id("confirm-ok").click()
        expect(self.page.get_by_test_id("confirm-dialog")).to_be_hidden()

    def expect_failed_loads(self, status: int) -> None:
        """The test provokes `status` answers on purpose: the browser's console lines for them
        are not errors of the dashboard."""
        assert 400 <= status < 500, status
        self.deliberate_4xx.add(status)

    def unexpected_console_errors(self) -> list[str]:
        """Console errors and uncaught exceptions, less the lines for deliberate 4xx answers."""
        errors = [e for e in self.console_errors if not self._deliberate(e)]
        return errors + [f"uncaught: {e}" for e in self.page_errors]

    def _deliberate(self, text: str) -> bool:
        failed = FAILED_LOAD.search(text)
        return failed is not None and int(failed.group(1)) in self.deliberate_4xx
