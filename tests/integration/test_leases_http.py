"""Lease long-polls over real HTTP (waitress in-process): waiting consumers hold pool threads,
never the loop, so submissions are answered at once and reach the waiting consumers."""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any
from urllib.parse import urlparse

from tests.integration import api_fixtures
from tests.integration.api_fixtures import LiveServer

live_server = api_fixtures.live_server

CONSUMERS = 20


def post(url: str, path: str, body: Any, timeout: float = 30) -> tuple[int, Any]:
    parts = urlparse(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"}
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_waiting_consumers_do_not_block_submissions_and_get_the_jobs(
    live_server: LiveServer,
) -> None:
    leased: list[str] = []
    lock = threading.Lock()

    def consume(n: int) -> None:
        body = {"queues": ["default"], "consumer": f"c{n}", "wait": 5, "lease_s": 30}
        status, reply = post(live_server.url, "/leases", body)
        assert status == 200
        with lock:
            leased.extend(x["job"]["id"] for x in reply["leases"])

    consumers = [threading.Thread(target=consume, args=(n,)) for n in range(CONSUMERS)]
    for thread in consumers:
        thread.start()
    time.sleep(0.5)  # every consumer is now waiting in a pool thread
    submitted, slowest = [], 0.0
    for _ in range(CONSUMERS):
        started = time.monotonic()
        status, job = post(live_server.url, "/jobs", {"type": "echo"})
        slowest = max(slowest, time.monotonic() - started)
        assert status == 201
        submitted.append(job["id"])
    for thread in consumers:
        thread.join(timeout=15)
    assert slowest < 0.5
    assert sorted(leased) == sorted(submitted)  # each job leased once, every consumer served
