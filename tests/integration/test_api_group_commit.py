"""Submissions served in one loop pass share one Redis call (api.group_commit), real Redis."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.conftest import make_settings
from tests.integration.api_fixtures import LiveServer, free_port
from tests.support.redis_server import RedisServer
from workstream.api.app import create_app
from workstream.api.group_commit import GROUP_MAX_JOBS, GroupCommitStore
from workstream.common.errors import QueueFullError
from workstream.common.jobs import EnqueueResult, JobSpec
from workstream.common.keys import Keys
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.states import JobStatus

QUEUE = Keys("default").queue("default")


def script_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.fixture
def grouped(settings: Settings) -> Iterator[GroupCommitStore]:
    client = connect(settings, max_connections=8)
    yield GroupCommitStore(client, settings)
    client.close()


def submitter(store: GroupCommitStore, spec: JobSpec, outcomes: list[Any]) -> Callable[[], None]:
    """A task as a request would run it: one enqueue; records its result or its error."""

    def task() -> None:
        try:
            outcomes.append(store.enqueue(spec))
        except Exception as ex:
            outcomes.append(ex)

    return task


def test_the_enqueues_of_one_pass_are_one_script_call_and_each_gets_its_job(
    grouped: GroupCommitStore, redis_client: redis.Redis
) -> None:
    outcomes: list[Any] = []
    specs = [JobSpec(type="echo", payload={"n": n}) for n in range(5)]
    grouped.enqueue(JobSpec(type="warm-up"))  # the script loaded (a NOSCRIPT counts as a call)
    redis_client.config_resetstat()
    grouped.serve_together([submitter(grouped, spec, outcomes) for spec in specs])

    assert script_calls(redis_client) == 1
    assert all(isinstance(outcome, EnqueueResult) and outcome.created for outcome in outcomes)
    payloads = [grouped.get_job(outcome.job_id).payload for outcome in outcomes]  # type: ignore[union-attr]
    assert payloads == [{"n": n} for n in range(5)]


def test_a_full_queue_judges_each_enqueue_of_the_pass_alone(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    settings = make_settings(redis_server.url, JOB_QUEUE_CAPACITY="2")
    client = connect(settings, max_connections=8)
    store = GroupCommitStore(client, settings)
    outcomes: list[Any] = []
    try:
        store.serve_together(
            [submitter(store, JobSpec(type="echo", payload={"n": n}), outcomes) for n in range(3)]
        )
    finally:
        client.close()
    assert [type(outcome) for outcome in outcomes] == [EnqueueResult, EnqueueResult, QueueFullError]
    assert redis_client.llen(QUEUE) == 2


@pytest.mark.parametrize("count", [3, GROUP_MAX_JOBS + 1], ids=["one-call", "two-calls"])
def test_an_error_from_redis_is_raised_in_every_request_of_the_pass(count: int) -> None:
    down = make_settings(f"redis://127.0.0.1:{free_port()}/0")
    client = connect(down, max_connections=8)
    store = GroupCommitStore(client, down)
    outcomes: list[Any] = []
    store.serve_together([submitter(store, JobSpec(type="echo"), outcomes) for _ in range(count)])
    client.close()
    assert len(outcomes) == count
    assert all(isinstance(outcome, redis.exceptions.ConnectionError) for outcome in outcomes)


def test_one_idempotency_key_twice_in_a_pass_answers_both_with_the_first_job(
    grouped: GroupCommitStore,
) -> None:
    outcomes: list[Any] = []
    spec = JobSpec(type="echo", idempotency_key="order-7")
    grouped.serve_together([submitter(grouped, spec, outcomes) for _ in range(2)])
    first, second = outcomes
    assert first.created and not second.created and second.job_id == first.job_id


def test_a_repeated_key_submitted_in_one_pass_reads_the_first_job_back(
    grouped: GroupCommitStore,
) -> None:
    # submit() reads the original job for a replayed key: a Redis call of its own, made from
    # the request's greenlet after the shared call.
    answers: list[tuple[Any, bool]] = []
    spec = JobSpec(type="echo", payload={"order": 7}, idempotency_key="order-7")
    grouped.serve_together([lambda: answers.append(grouped.submit(spec)) for _ in range(2)])
    (first, first_created), (second, second_created) = answers
    assert first_created and not second_created
    assert second.id == first.id and second.payload == {"order": 7}


def test_a_request_that_makes_no_enqueue_is_served_in_the_same_pass(
    grouped: GroupCommitStore,
) -> None:
    outcomes: list[Any] = []
    served: list[str] = []
    tasks = [
        submitter(grouped, JobSpec(type="echo"), outcomes),
        lambda: served.append("error reply"),
        submitter(grouped, JobSpec(type="echo"), outcomes),
    ]
    grouped.serve_together(tasks)
    assert served == ["error reply"] and len(outcomes) == 2


def test_a_failing_request_is_reported_after_the_rest_of_the_pass_is_served(
    grouped: GroupCommitStore,
) -> None:
    outcomes: list[Any] = []

    def broken() -> None:
        raise RuntimeError("bug in a handler")

    tasks = [broken, submitter(grouped, JobSpec(type="echo"), outcomes)]
    with pytest.raises(RuntimeError, match="bug in a handler"):
        grouped.serve_together(tasks)
    assert len(outcomes) == 1 and outcomes[0].status is JobStatus.PENDING


def test_an_enqueue_outside_a_pass_is_a_plain_enqueue(
    grouped: GroupCommitStore, redis_client: redis.Redis
) -> None:
    outcomes: list[Any] = []
    thread = threading.Thread(target=submitter(grouped, JobSpec(type="echo"), outcomes))
    thread.start()
    thread.join(timeout=10)
    assert len(outcomes) == 1 and outcomes[0].created
    assert redis_client.llen(QUEUE) == 1


# -- over HTTP ----------------------------------------------------------------------------------


def post_request(port: int) -> bytes:
    body = b'{"type": "echo"}'
    return (
        b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body)
    )


def read_reply(sock: socket.socket) -> bytes:
    data = b""
    deadline = time.monotonic() + 10
    while b'"id"' not in data or not data.rstrip().endswith(b"}"):
        assert time.monotonic() < deadline, f"no complete reply: {data[:200]!r}"
        chunk = sock.recv(65536)
        assert chunk, "server closed the connection"
        data += chunk
    return data


def test_submissions_ready_at_one_poll_are_written_to_redis_in_one_call(
    settings: Settings, grouped: GroupCommitStore, redis_client: redis.Redis
) -> None:
    release = threading.Event()
    app = create_app(settings, grouped)
    with LiveServer(app, threads=4, serve_together=grouped.serve_together) as server:
        port = int(server.url.rsplit(":", 1)[1])
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
        try:
            for sock in socks:  # each connection accepted and served once
                sock.sendall(post_request(port))
                assert read_reply(sock).startswith(b"HTTP/1.1 201")
            redis_client.config_resetstat()
            # A trigger thunk runs in the loop thread: it holds the loop (not inside a request,
            # so no cool-down) while the four requests reach the kernel.
            server.inline.server.trigger.pull_trigger(lambda: release.wait(timeout=10))  # type: ignore[attr-defined]
            time.sleep(0.2)
            for sock in socks:
                sock.sendall(post_request(port))
            time.sleep(0.2)
            release.set()
            replies = [read_reply(sock) for sock in socks]
        finally:
            for sock in socks:
                sock.close()
    assert all(reply.startswith(b"HTTP/1.1 201") for reply in replies)
    assert script_calls(redis_client) == 1
    assert redis_client.llen(QUEUE) == 8


def test_a_pass_larger_than_one_call_is_sent_in_calls_of_at_most_group_max_jobs(
    grouped: GroupCommitStore, redis_client: redis.Redis
) -> None:
    outcomes: list[Any] = []
    grouped.enqueue(JobSpec(type="warm-up"))
    redis_client.config_resetstat()
    count = GROUP_MAX_JOBS + GROUP_MAX_JOBS // 2
    grouped.serve_together(
        [submitter(grouped, JobSpec(type="echo"), outcomes) for _ in range(count)]
    )
    assert script_calls(redis_client) == 2
    assert len(outcomes) == count and all(outcome.created for outcome in outcomes)
