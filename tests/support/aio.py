"""Runs a coroutine to its end on a thread of its own.

Playwright's sync API (the browser tests) keeps an event loop running in the main thread for
the whole session, and asyncio.run refuses to start beside a running loop; a fresh thread has
none, whatever ran before."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 60) -> T:
    outcome: dict[str, Any] = {}

    def main() -> None:
        try:
            outcome["value"] = asyncio.run(coro)
        except BaseException as ex:  # handed to the caller's thread
            outcome["error"] = ex

    thread = threading.Thread(target=main, name="aio-run", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"coroutine still running after {timeout_s} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]
