"""Finds Debian's Chromium and opens Playwright contexts on it; `make chromium` installs it.

Shared by the browser test fixtures and by `python -m tests.browser.screenshot`. Installing is
`python -m tests.browser.chromium` (the Makefile's `chromium` target, which `make test` depends
on), never a side effect of collecting tests: a test run changes nothing on the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Playwright, ViewportSize

APT_TIMEOUT_S = 300
LAUNCH_TIMEOUT_MS = 30_000

# Headless, no sandbox (containers run as root), and nothing that reaches off the machine.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class ChromiumUnavailable(RuntimeError):
    """Chromium is missing and this machine cannot install it (the tests skip with this text)."""


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=APT_TIMEOUT_S,
        check=False,
    )


def _has_install_candidate() -> bool:
    """True when apt already knows a chromium package (so `apt-get update` can be skipped)."""
    if shutil.which("apt-cache") is None:
        return False
    found = subprocess.run(
        ["apt-cache", "policy", "chromium"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return found.returncode == 0 and "Candidate:" in found.stdout and "(none)" not in found.stdout


def ensure_chromium() -> str:
    """Path of the `chromium` binary; ChromiumUnavailable (the tests skip) when it is missing."""
    found = shutil.which("chromium")
    if found:
        return found
    raise ChromiumUnavailable("chromium is not installed; run `make chromium`")


def install_chromium() -> str:
    """Path of the `chromium` binary, installing Debian's package first when it is missing.

    Raises ChromiumUnavailable (with the reason) when it is missing and cannot be installed.
    """
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise ChromiumUnavailable("chromium is not installed and apt-get is not available")
    if os.geteuid() != 0:
        raise ChromiumUnavailable(
            "chromium is not installed and installing it needs root "
            "(run: apt-get install -y --no-install-recommends chromium)"
        )
    try:
        if not _has_install_candidate():
            updated = _apt("update")
            if updated.returncode != 0:
                raise ChromiumUnavailable(f"apt-get update failed: {updated.stderr[-500:]}")
        installed = _apt("install", "-y", "--no-install-recommends", "chromium")
    except subprocess.TimeoutExpired as exc:
        raise ChromiumUnavailable(f"installing chromium timed out after {exc.timeout}s") from exc
    if installed.returncode != 0:
        raise ChromiumUnavailable(f"apt-get install chromium failed: {installed.stderr[-500:]}")
    found = shutil.which("chromium")
    if not found:
        raise ChromiumUnavailable("apt-get installed chromium but no `chromium` is on PATH")
    return found


def open_context(
    playwright: Playwright,
    executable: str,
    user_data_dir: Path,
    viewport: ViewportSize | None = None,
    **options: Any,
) -> BrowserContext:
    """A fresh Chromium (its own new profile directory) with one browser context."""
    user_data_dir.mkdir(parents=True, exist_ok=True)
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=executable,
        headless=True,
        args=LAUNCH_ARGS,
        viewport=viewport or ViewportSize(width=1280, height=800),
        timeout=LAUNCH_TIMEOUT_MS,
        **options,
    )


def main() -> int:
    """`make chromium`: 0 when Chromium is there afterwards; otherwise the reason and 0 all the
    same, so `make test` goes on and only the browser tests skip."""
    try:
        path = install_chromium()
    except ChromiumUnavailable as exc:
        sys.stderr.write(f"chromium: not available, the browser tests will skip: {exc}\n")
        return 0
    sys.stdout.write(f"chromium: {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
