"""The bench's POST /jobs load generator counts a job only when it is real: a 201 with a job id
of its own, and the job waiting in the queue afterwards."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis

from bench.workstream_runner import Api, post_jobs_concurrently
from tests.support.redis_server import RedisServer, free_port

# A server that answers every POST with 201 and the same job id, and stores nothing.
ONE_ID_SERVER = """
import sys
import waitress

BODY = b'{"id":"' + b"0" * 32 + b'","status":"pending"}'

def app(environ, start_response):
    environ["wsgi.input"].read()
    start_response("201 Created", [("Content-Type", "application/json"),
                                   ("Content-Length", str(len(BODY)))])
    return [BODY]

waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=2)
"""


@pytest.fixture
def one_id_server() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", ONE_ID_SERVER, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_jobs_created_through_two_api_processes_are_all_counted(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    api = Api(redis_server.url, processes=2)
    try:
        figure = post_jobs_concurrently(api.port, 200, 4, redis_client, api.proc.pid)
    finally:
        api.stop()
    assert (figure["ok"], figure["errors"]) == (200, 0)
    assert figure["api_cpu_us_per_job"] > 0
    assert figure["redis_cpu_us_per_job"] >= 0
    assert figure["client_cpu_us_per_job"] > 0


def test_replies_that_repeat_one_job_id_count_as_one_job(one_id_server: int) -> None:
    figure = post_jobs_concurrently(one_id_server, 40, 2)
    assert (figure["ok"], figure["errors"]) == (1, 39)


def test_created_replies_count_only_as_far_as_jobs_wait_in_the_queue(
    one_id_server: int, redis_client: redis.Redis
) -> None:
    figure = post_jobs_concurrently(one_id_server, 10, 1, redis_client)
    assert (figure["ok"], figure["errors"]) == (0, 10)
