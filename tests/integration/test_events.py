"""The job event stream: every transition appended by the script that makes it, capped, and
served by GET /events as Server-Sent Events that resume from Last-Event-ID."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import falcon.testing
import pytest
import redis

from tests.integration import api_fixtures
from tests.integration.api_fixtures import submit
from workstream.api.app import create_app
from workstream.api.dispatch import adjustments
from workstream.api.resources.events import EventHub, EventStream, Source
from workstream.common import events
from workstream.common.jobs import JobSpec
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.shards import open_store
from workstream.common.states import JobStatus
from workstream.common.store import JobStore

make_client = api_fixtures.make_client

# Events of one API response: short holds keep each test sub-second.
FAST = {"EVENTS_HOLD": "200ms", "RETRY_BACKOFF": "0s"}
# stream-node-max-entries (Redis default): MAXLEN ~ removes whole nodes only.
NODE_ENTRIES = 100


@dataclass
class Message:
    id: str | None
    event: str
    data: Any


def parse_sse(text: str) -> tuple[list[Message], str | None, list[str]]:
    """The messages with data, the last id seen (what EventSource would send back), comments."""
    messages: list[Message] = []
    comments: list[str] = []
    last_id = None
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "id" in fields:
            last_id = fields["id"]
        if "data" in fields:
            messages.append(
                Message(
                    fields.get("id"), fields.get("event", "message"), json.loads(fields["data"])
                )
            )
    return messages, last_id, comments


def stream(client: redis.Redis, store: JobStore, *, newest_first: bool = False) -> Any:
    """The stream's entries [(id, fields)] (decoded), oldest first."""
    if newest_first:
        return client.xrevrange(store.keys.events)
    return client.xrange(store.keys.events)


def names_for(client: redis.Redis, store: JobStore, job_id: str) -> list[str]:
    return [fields["ev"] for _, fields in stream(client, store) if fields["job"] == job_id]


def get_events(
    client: falcon.testing.TestClient, last_id: str | None = None, **params: str
) -> falcon.testing.Result:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    return client.simulate_get("/events", params=params, headers=headers)


# -- the scripts --------------------------------------------------------------------------------


def test_a_completed_job_tells_created_started_completed_once_in_order(
    store: JobStore, redis_client: redis.Redis
) -> None:
    job_id = submit(store)
    (job,) = store.claim("w1", 1, ["default"])
    store.complete("w1", job, "1")
    entries = [f for _, f in stream(redis_client, store) if f["job"] == job_id]
    assert [(f["ev"], f["status"]) for f in entries] == [
        ("created", "pending"),
        ("started", "processing"),
        ("completed", "completed"),
    ]
    assert entries[-1]["worker"] == "w1" and entries[-1]["attempt"] == "1"
    assert entries[-1]["queue"] == "default" and entries[-1]["type"] == "echo"


def test_a_retried_job_tells_each_attempt(store: JobStore, redis_client: redis.Redis) -> None:
    job_id = submit(store, max_attempts=2)
    (job,) = store.claim("w1", 1, ["default"])
    store.fail("w1", job, "boom", permanent=False)
    (job,) = store.claim("w1", 1, ["default"])
    store.fail("w1", job, "boom again", permanent=False)
    assert names_for(redis_client, store, job_id) == [
        "created",
        "started",
        "retrying",
        "started",
        "failed",
    ]
    last = stream(redis_client, store, newest_first=True)[0][1]
    assert last["detail"].endswith("boom again") and last["attempt"] == "2"


def test_cancelled_jobs_tell_their_cancel(store: JobStore, redis_client: redis.Redis) -> None:
    waiting = submit(store)
    store.cancel(waiting)
    running = submit(store)
    (job,) = store.claim("w1", 1, ["default"])
    store.cancel(running)
    store.cancel(running)  # asking twice is asking once
    store.complete("w1", job, "1")
    assert names_for(redis_client, store, waiting) == ["created", "cancelled"]
    assert names_for(redis_client, store, running) == [
        "created",
        "started",
        "cancel_requested",
        "cancelled",
    ]


def test_operator_actions_and_delays_are_told(store: JobStore, redis_client: redis.Redis) -> None:
    job_id = submit(store, max_attempts=1)
    (job,) = store.claim("w1", 1, ["default"])
    store.fail("w1", job, "boom", permanent=False)
    store.retry(job_id)
    delayed = store.enqueue(JobSpec(type="echo", delay=0.001)).job_id
    time.sleep(0.01)
    store.promote()
    assert names_for(redis_client, store, job_id) == [
        "created",
        "started",
        "failed",
        "retried",
    ]
    assert names_for(redis_client, store, delayed) == ["created", "promoted"]


def test_a_dead_workers_job_is_told_recovered(store: JobStore, redis_client: redis.Redis) -> None:
    job_id = submit(store)
    store.claim("w1", 1, ["default"])
    store.recover("w1")
    assert names_for(redis_client, store, job_id)[-1] == "recovered"
    last = stream(redis_client, store, newest_first=True)[0][1]
    assert last["status"] == "pending" and "died" in last["detail"]


def test_the_sweepers_and_a_workers_own_transitions_are_told(
    store: JobStore, redis_client: redis.Redis
) -> None:
    overdue = submit(store, timeout=0.001)
    (job,) = store.claim("w1", 1, ["default"])
    store.progress(overdue, job.lease, '{"done": 0.5}')
    store.progress(overdue, job.lease, '{"done": 0.6}')  # within PROGRESS_EVENT_MS: no event
    time.sleep(0.01)
    store.reclaim(0)
    released = submit(store, queue="other")
    (held,) = store.claim("w2", 1, ["other"])
    store.release("w2")
    expiring = submit(store, expires_in=0.001, queue="later")
    time.sleep(0.01)
    store.expire()
    store.delete(expiring)
    assert names_for(redis_client, store, overdue) == [
        "created",
        "started",
        "progress",
        "reclaimed",
    ]
    progress = next(f for _, f in stream(redis_client, store) if f["ev"] == "progress")
    assert progress["detail"] == '{"done": 0.5}'
    assert store.get_job(overdue).progress == {"done": 0.6}  # type: ignore[union-attr]
    assert names_for(redis_client, store, released)[-1] == "released"
    assert held.id == released
    assert names_for(redis_client, store, expiring) == ["created", "expired", "deleted"]


def test_the_stream_stays_within_events_max_give_or_take_a_node(
    store: JobStore, redis_client: redis.Redis
) -> None:
    events.configure(redis_client, store.keys, 150)
    store.enqueue_many([JobSpec(type="echo") for _ in range(1000)])
    length = redis_client.xlen(store.keys.events)
    # Approximate trimming removes whole nodes: never below the cap, at most a node above.
    assert 150 <= length <= 150 + NODE_ENTRIES


def test_events_max_zero_writes_no_stream(store: JobStore, redis_client: redis.Redis) -> None:
    events.configure(redis_client, store.keys, 0)
    job_id = submit(store)
    (job,) = store.claim("w1", 1, ["default"])
    store.complete("w1", job, "1")
    assert store.get_status(job_id).value == "completed"  # type: ignore[union-attr]
    assert redis_client.exists(store.keys.events) == 0


def test_a_broken_stream_costs_the_events_never_the_transitions(
    store: JobStore, redis_client: redis.Redis
) -> None:
    redis_client.set(store.keys.events, "not a stream")
    redis_client.sadd(store.keys.events_max, "not a number")
    job_id = submit(store)
    (job,) = store.claim("w1", 1, ["default"])
    store.complete("w1", job, "1")
    assert store.get_status(job_id).value == "completed"  # type: ignore[union-attr]
    assert redis_client.zscore(store.keys.status(JobStatus.COMPLETED), job_id) is not None


def test_a_process_changing_events_max_says_so(
    store: JobStore, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    assert events.configure(redis_client, store.keys, 500) is None
    with caplog.at_level("WARNING"):
        assert events.configure(redis_client, store.keys, 900) == 500
    assert any(r.getMessage() == "events.max_changed" for r in caplog.records)


# -- GET /events ---------------------------------------------------------------------------------


def test_a_resumed_consumer_misses_nothing_still_in_the_stream(
    store: JobStore, make_client: Callable[..., falcon.testing.TestClient]
) -> None:
    client = make_client(**FAST)
    first = submit(store)
    body, last_id, _ = parse_sse(get_events(client, since="0").text)
    assert [m.data["job_id"] for m in body] == [first] and last_id == body[-1].id
    # Disconnected: meanwhile jobs are created and run.
    later = [submit(store) for _ in range(3)]
    (job,) = store.claim("w1", 1, ["default"])
    store.complete("w1", job, "1")
    seen: list[tuple[str, str]] = []
    for _ in range(5):
        messages, last_id, _ = parse_sse(get_events(client, last_id).text)
        seen += [(m.data["job_id"], m.event) for m in messages]
    assert seen == [(job_id, "created") for job_id in later] + [
        (first, "started"),
        (first, "completed"),
    ]


def test_each_message_carries_its_stream_id_name_and_json(
    store: JobStore, make_client: Callable[..., falcon.testing.TestClient]
) -> None:
    job_id = submit(store, queue="mail")
    result = get_events(make_client(**FAST), since="0")
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("text/event-stream")
    assert result.text.startswith("retry: ")
    (message,), _, _ = parse_sse(result.text)
    assert message.event == "created" and message.id == message.data["id"]
    assert message.data["job_id"] == job_id and message.data["queue"] == "mail"
    assert message.id is not None and message.data["at"] == int(message.id.split("-")[0])


def test_filters_pick_queue_type_and_job(
    store: JobStore, make_client: Callable[..., falcon.testing.TestClient]
) -> None:
    client = make_client(**FAST)
    mail = submit(store, queue="mail", type="send")
    submit(store, queue="mail", type="other")
    other = submit(store, queue="bulk", type="send")

    def jobs(**params: str) -> list[str]:
        messages, _, _ = parse_sse(get_events(client, since="0", **params).text)
        return [m.data["job_id"] for m in messages]

    assert jobs(queue="mail", type="send") == [mail]
    assert jobs(type="send") == [mail, other]
    assert jobs(job=other) == [other]


def test_an_idle_response_ends_with_a_heartbeat_and_its_position(
    store: JobStore, make_client: Callable[..., falcon.testing.TestClient]
) -> None:
    submit(store, queue="mail")
    started = time.monotonic()
    messages, last_id, comments = parse_sse(get_events(make_client(**FAST), queue="bulk").text)
    assert messages == [] and "heartbeat" in comments
    assert time.monotonic() - started >= 0.15  # it held for EVENTS_HOLD
    # Resuming after what it looked through, not from the start again.
    assert last_id is not None and last_id != "0-0"


def test_a_waiting_response_answers_when_an_event_arrives(
    store: JobStore, make_client: Callable[..., falcon.testing.TestClient]
) -> None:
    client = make_client(EVENTS_HOLD="5s")
    timer = threading.Timer(0.3, lambda: submit(store))
    timer.start()
    started = time.monotonic()
    messages, _, _ = parse_sse(get_events(client, since="0").text)  # the stream is empty
    timer.join()
    assert [m.event for m in messages] == ["created"]
    assert time.monotonic() - started < 3


def test_without_a_position_a_response_starts_from_now(
    store: JobStore, make_client: Callable[..., falcon.testing.TestClient]
) -> None:
    submit(store)
    messages, last_id, comments = parse_sse(get_events(make_client(**FAST)).text)
    assert messages == [] and "heartbeat" in comments
    assert last_id is not None and last_id != "0-0"  # where "now" was: the next resumes there


def test_a_position_older_than_the_stream_says_gap_first(
    store: JobStore,
    redis_client: redis.Redis,
    make_client: Callable[..., falcon.testing.TestClient],
) -> None:
    events.configure(redis_client, store.keys, 10)
    first = submit(store)
    position = stream(redis_client, store)[0][0]
    store.enqueue_many([JobSpec(type="echo") for _ in range(300)])
    messages, _, _ = parse_sse(get_events(make_client(**FAST), position).text)
    assert messages[0].event == "gap" and messages[0].data["after"] == position
    assert first not in [m.data.get("job_id") for m in messages]
    assert messages[1].id == messages[0].data["oldest"]


@pytest.mark.parametrize(
    "bad", ["abc", "1-2-3", "-1", "1-", "99999999999999999999999-0", "\uff15-5", "1-\u0665"]
)
def test_a_malformed_last_event_id_is_400(
    bad: str, make_client: Callable[..., falcon.testing.TestClient]
) -> None:
    result = get_events(make_client(**FAST), bad)
    assert result.status_code == 400
    assert result.json["error"]["code"] == "malformed_event_id"


def test_the_last_possible_id_is_a_position_with_nothing_after_it(
    store: JobStore, make_client: Callable[..., falcon.testing.TestClient]
) -> None:
    submit(store)
    result = get_events(make_client(**FAST), f"{2**64 - 1}-{2**64 - 1}")
    assert result.status_code == 200  # Redis refuses an XRANGE after it: was a 500
    assert parse_sse(result.text)[0] == []


def test_malformed_filters_are_400(make_client: Callable[..., falcon.testing.TestClient]) -> None:
    client = make_client(**FAST)
    for params in ({"queue": "a b"}, {"type": "x" * 200}, {"job": "../x"}):
        result = client.simulate_get("/events", params=params)
        assert result.status_code == 400, params
        assert result.json["error"]["code"] == "validation_error"


def test_events_off_answers_404_events_disabled(
    make_client: Callable[..., falcon.testing.TestClient],
) -> None:
    result = get_events(make_client(EVENTS_MAX="0"))
    assert result.status_code == 404 and result.json["error"]["code"] == "events_disabled"


def test_streams_past_the_cap_answer_503_with_retry_after(
    settings: Settings, store: JobStore
) -> None:
    capped = settings.with_overrides(events_streams=1, events_hold=timedelta(seconds=3))
    client = falcon.testing.TestClient(create_app(capped, store))
    holder = threading.Thread(target=lambda: get_events(client))
    holder.start()
    time.sleep(0.3)  # the first response is waiting for an event
    result = get_events(client)
    submit(store)  # lets the first answer
    holder.join(timeout=5)
    assert result.status_code == 503
    assert result.json["error"]["code"] == "too_many_streams"
    assert result.headers["retry-after"] == "1"
    assert get_events(client, since="0").status_code == 200  # its slot came back


def test_a_long_poll_answers_on_the_terminal_event(store: JobStore, settings: Settings) -> None:
    client = falcon.testing.TestClient(create_app(settings, store))
    job_id = submit(store)

    def finish() -> None:
        (job,) = store.claim("w1", 1, ["default"])
        store.complete("w1", job, "1")

    timer = threading.Timer(0.5, finish)
    timer.start()
    store.redis.config_resetstat()
    started = time.monotonic()
    result = client.simulate_get(f"/jobs/{job_id}", params={"wait": "10"})
    timer.join()
    assert result.json["status"] == "completed"
    assert time.monotonic() - started < 2.0
    # It read the status once before waiting and once after (polling read it every 20-250 ms:
    # 8 times in half a second); the hub may start before or after the first read.
    reads: Any = store.redis.info("commandstats").get("cmdstat_hget", {"calls": 0})
    assert reads["calls"] <= 3


# -- over real HTTP (waitress, as workstream-api serves it) -----------------------------------


def test_over_waitress_a_waiting_response_arrives_when_its_event_does(
    settings: Settings, store: JobStore
) -> None:
    """waitress sends a running request's bytes only past SEND_BYTES (64 KiB): the response
    must end to arrive, so it ends as soon as it has its batch."""
    app = create_app(settings.with_overrides(events_hold=timedelta(seconds=10)), store)
    with api_fixtures.LiveServer(app, **adjustments(settings, connections=100)) as server:
        timer = threading.Timer(0.3, lambda: submit(store))
        timer.start()
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
        try:
            conn.request("GET", "/events?since=0", headers={"Accept": "text/event-stream"})
            response = conn.getresponse()
            text = response.read().decode()
        finally:
            conn.close()
            timer.join()
    assert response.status == 200
    assert [m.event for m in parse_sse(text)[0]] == ["created"]
    assert time.monotonic() - started < 2  # not the 10 s hold


def test_a_shards_events_are_in_its_own_stream_served_by_queue_or_job(
    redis_server: Any, redis_client: redis.Redis
) -> None:
    settings = Settings.from_environ(
        {"REDIS_URL": redis_server.url, "QUEUE_SHARDS": "emails:a", **FAST}
    )
    store = open_store(redis_client, settings)
    client = falcon.testing.TestClient(create_app(settings, store))
    email = store.enqueue(JobSpec(type="send", queue="emails")).job_id
    other = store.enqueue(JobSpec(type="send")).job_id
    shard_a = store.stores["a"]  # type: ignore[attr-defined]
    assert names_for(redis_client, shard_a, email) == ["created"]  # written by shard a's script

    def jobs(**params: str) -> list[str]:
        messages, _, _ = parse_sse(get_events(client, since="0", **params).text)
        return [m.data["job_id"] for m in messages]

    assert jobs(queue="emails") == [email]
    assert jobs(job=email) == [email]
    assert sorted(jobs()) == sorted([email, other])  # unfiltered: every shard's, merged
    # (the merge itself: tests/integration/test_events_shards.py)


def test_a_reader_behind_the_hubs_buffer_reads_redis_then_joins_it(
    store: JobStore, settings: Settings, redis_client: redis.Redis
) -> None:
    stopping = threading.Event()
    hub = EventHub(lambda: connect(settings, dedicated=True), store.keys, stopping, buffer_size=5)
    stream_ = EventStream(
        {"": Source(store.redis, store.keys, hub)},
        lambda wanted: "",
        streams=1,
        hold_s=0.2,
        stopping=stopping,
    )
    client = falcon.testing.TestClient(falcon.App())
    client.app.add_route("/events", stream_)
    try:
        get_events(client)  # starts the hub at the stream's end (empty)
        deadline = time.monotonic() + 5
        while hub.floor is None and time.monotonic() < deadline:
            time.sleep(0.01)
        created = [submit(store) for _ in range(40)]  # the hub keeps 5-10 of them
        while hub.newest != stream(redis_client, store)[-1][0] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert hub.floor != "0-0"  # it dropped the oldest from its buffer
        seen: list[str] = []
        last_id = "0"
        for _ in range(5):
            messages, last_id, _ = parse_sse(get_events(client, last_id).text)  # type: ignore[assignment]
            seen += [m.data["job_id"] for m in messages]
        assert seen == created
    finally:
        stopping.set()


def test_many_open_streams_never_starve_submissions(settings: Settings, store: JobStore) -> None:
    threads = 32  # streams get at most (32 - 16) / 2 = 8 of them
    capped = settings.with_overrides(api_threads=threads, events_hold=timedelta(seconds=3))
    app = create_app(capped, store)
    served = adjustments(capped, connections=500)
    statuses: list[int] = []
    with api_fixtures.LiveServer(app, **served) as server:
        port = int(server.url.rsplit(":", 1)[1])

        def request(method: str, path: str, body: str | None = None) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                headers = {"Content-Type": "application/json"} if body else {}
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                return response.status
            finally:
                conn.close()

        streams = [
            threading.Thread(target=lambda: statuses.append(request("GET", "/events")))
            for _ in range(100)
        ]
        for thread in streams:
            thread.start()
        time.sleep(0.5)  # the admitted streams hold their threads
        started = time.monotonic()
        created = [request("POST", "/jobs", '{"type": "echo"}') for _ in range(10)]
        took = time.monotonic() - started
        for thread in streams:
            thread.join(timeout=10)
    assert created == [201] * 10 and took < 1  # not queued behind the streams' 3 s holds
    assert statuses.count(200) <= 8 + 10  # at most 8 at once (a few after the jobs' events)
    assert statuses.count(503) >= 80 and set(statuses) <= {200, 503}
