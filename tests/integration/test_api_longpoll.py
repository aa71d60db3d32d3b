"""Long-polls over real HTTP (waitress in-process): waiting clients do not starve submissions."""

from __future__ import annotations

import http.client
import json
import threading
import time
from urllib.parse import urlparse

from tests.integration import api_fixtures
from tests.integration.api_fixtures import LiveServer, submit
from workstream.common.store import JobStore

# The shared API fixtures, bound here so that pytest finds them for this module.
live_server = api_fixtures.live_server

WAITERS = 200


def request(
    url: str, method: str, path: str, body: object = None, timeout: float = 30
) -> tuple[int, object]:
    parts = urlparse(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_200_long_polls_do_not_block_submissions(live_server: LiveServer, store: JobStore) -> None:
    job_id = submit(store)
    answered: list[float] = []
    started = time.monotonic()

    def wait() -> None:
        status, body = request(live_server.url, "GET", f"/jobs/{job_id}?wait=5")
        assert status == 200 and isinstance(body, dict) and body["status"] == "pending"
        answered.append(time.monotonic() - started)

    waiters = [threading.Thread(target=wait) for _ in range(WAITERS)]
    for thread in waiters:
        thread.start()
    time.sleep(1.0)  # every waiter is now holding a request thread
    submit_times = []
    for _ in range(10):
        t0 = time.monotonic()
        status, _ = request(live_server.url, "POST", "/jobs", {"type": "echo"})
        submit_times.append(time.monotonic() - t0)
        assert status == 201
    still_waiting = WAITERS - len(answered)
    for thread in waiters:
        thread.join(timeout=30)
    print(  # noqa: T201 - the figures are the point of this test
        f"\nwaiters={WAITERS} holding={still_waiting} during submissions; "
        f"POST /jobs max {max(submit_times) * 1000:.0f} ms"
    )
    # Those beyond the waiter cap (API_THREADS - 16 = 240 here) would answer at once; with 200
    # all of them hold their thread while the submissions go through.
    assert still_waiting == WAITERS
    assert max(submit_times) < 1.0
    assert len(answered) == WAITERS and min(answered) >= 4.5
