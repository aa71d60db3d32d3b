"""GET /events on the Cluster layout (QUEUE_SHARDS) over one standalone Redis: each shard's
scripts write their own stream; an unfiltered stream merges them (by time, each shard in its
own order) and every id carries a position per shard, so a resumed reader misses nothing and
sees nothing twice on any shard."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import falcon.testing
import httpx
import pytest
import redis

from tests.conftest import make_settings
from tests.integration.test_cli_events import run
from tests.integration.test_events import get_events, parse_sse
from tests.support.redis_server import RedisServer
from workstream.api.app import create_app
from workstream.api.resources import events as resource
from workstream.cli.commands import Context
from workstream.client import Client
from workstream.common import events
from workstream.common.jobs import JobSpec
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.shards import ShardedStore, open_store
from workstream.common.store import JobStore

# Default shard (queue "default"), shard a (emails), shard b (images).
QUEUES = {"": "default", "a": "emails", "b": "images"}


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    return make_settings(
        redis_server.url,
        QUEUE_SHARDS="emails:a,images:b",
        EVENTS_HOLD="200ms",
        RETRY_BACKOFF="0s",
    )


@pytest.fixture
def store(settings: Settings, redis_client: redis.Redis) -> ShardedStore:
    sharded = open_store(redis_client, settings)
    assert isinstance(sharded, ShardedStore)
    return sharded


@pytest.fixture
def client(settings: Settings, store: ShardedStore) -> Iterator[falcon.testing.TestClient]:
    stopping = threading.Event()
    yield falcon.testing.TestClient(create_app(settings, store, stopping=stopping))
    stopping.set()  # the hubs' readers end


def submit(store: ShardedStore, shard: str) -> str:
    return str(store.enqueue(JobSpec(type="t", queue=QUEUES[shard])).job_id)


def entries(redis_client: redis.Redis, store: ShardedStore, shard: str) -> list[str]:
    """The stream ids in one shard's stream, oldest first."""
    return [entry_id for entry_id, _ in redis_client.xrange(store.stores[shard].keys.events)]


def positions(message_id: str | None) -> dict[str, str]:
    assert message_id is not None
    return events.parse_positions(message_id)


def read_all(
    client: falcon.testing.TestClient,
    last_id: str,
    rounds: int = 40,
    *,
    partial: bool = False,
    **params: str,
) -> tuple[list[Any], str]:
    """Every message from `last_id` on, over as many responses as it takes (until one brings
    nothing), resuming each with the id the one before ended at; `partial`: what `rounds`
    responses brought."""
    seen: list[Any] = []
    for _ in range(rounds):
        messages, ending, comments = parse_sse(get_events(client, last_id, **params).text)
        assert ending is not None
        last_id = ending
        seen += messages
        if not messages and "heartbeat" in comments:
            return seen, last_id
    if partial:
        return seen, last_id
    raise AssertionError("the stream did not catch up")


def test_jobs_on_three_shards_all_appear_in_one_unfiltered_stream_in_time_order(
    client: falcon.testing.TestClient, store: ShardedStore, redis_client: redis.Redis
) -> None:
    jobs = []
    for shard in ("a", "", "b", "b", "a", ""):
        jobs.append(submit(store, shard))
        time.sleep(0.002)  # distinct ms: the merge order is the submission order
    messages, _, _ = parse_sse(get_events(client, since="0").text)
    assert [m.data["job_id"] for m in messages] == jobs
    assert [m.data.get("shard", "") for m in messages] == ["a", "", "b", "b", "a", ""]
    last = positions(messages[-1].id)
    assert list(last) == ["", "a", "b"]  # default first and bare, then the names in order
    assert last == {shard: entries(redis_client, store, shard)[-1] for shard in ("", "a", "b")}
    assert messages[-1].id == messages[-1].data["id"]  # the JSON's id resumes the same way


def test_a_consumer_resumed_with_a_composite_id_misses_nothing_and_sees_nothing_twice(
    client: falcon.testing.TestClient,
    store: ShardedStore,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resource, "BATCH", 3)  # many short responses: cuts inside every shard
    first, messages = [], []
    for shard in ("", "a", "b") * 3:
        first.append(submit(store, shard))
    got, last_id = read_all(client, "0", rounds=2, partial=True)  # then disconnected
    assert len(got) == 6
    messages += got
    # Meanwhile every shard moves on: jobs created, claimed, completed.
    for shard in ("b", "a", "", "a"):
        submit(store, shard)
    for shard, queue in QUEUES.items():
        for job in store.stores[shard].claim("w-" + (shard or "d"), 2, [queue]):
            store.stores[shard].complete("w-" + (shard or "d"), job, "1")
    got, _ = read_all(client, last_id)
    messages += got
    for shard in ("", "a", "b"):
        served = [m.data for m in messages if m.data.get("shard", "") == shard]
        # Each shard's entries exactly once, in that shard's order.
        ids = [positions(data["id"])[shard] for data in served]
        assert ids == entries(redis_client, store, shard)
    names = [(m.data["job_id"], m.event) for m in messages]
    assert len(names) == len(set(names)) and {job for job, _ in names} >= set(first)


def test_pages_read_from_redis_merge_in_time_order_across_page_ends(
    client: falcon.testing.TestClient, store: ShardedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resource, "PAGE", 4)  # a reader behind the hubs reads pages of 4
    jobs = []
    for shard in ("b", "a", "a", "a", "a", "a", "b", "a"):
        jobs.append(submit(store, shard))
        time.sleep(0.002)
    # Shard a's first page ends before b's second entry: a's fifth entry must come first.
    messages, _ = read_all(client, "0")
    assert [m.data["job_id"] for m in messages] == jobs


def test_each_shard_says_its_own_gap(
    client: falcon.testing.TestClient, store: ShardedStore, redis_client: redis.Redis
) -> None:
    for shard in ("", "a", "b"):
        submit(store, shard)
    _, start = read_all(client, "0")
    events.configure(redis_client, store.stores["a"].keys, 10)  # only shard a's stream is cut
    for _ in range(300):
        submit(store, "a")
    later_b = submit(store, "b")
    messages, _, _ = parse_sse(get_events(client, start).text)
    gaps = [m.data for m in messages if m.event == "gap"]
    assert gaps == [
        {
            "after": positions(start)["a"],
            "oldest": entries(redis_client, store, "a")[0],
            "shard": "a",
        }
    ]
    assert later_b in [m.data.get("job_id") for m in messages]


def test_a_named_shards_filtered_stream_carries_its_position_and_takes_a_bare_one(
    client: falcon.testing.TestClient, store: ShardedStore, redis_client: redis.Redis
) -> None:
    email = submit(store, "a")
    messages, _, _ = parse_sse(get_events(client, since="0", queue="emails").text)
    assert [m.id for m in messages] == [f"a={entries(redis_client, store, 'a')[0]}"]
    second = submit(store, "a")
    submit(store, "")
    # A bare id on shard a's stream (as issued before merging) still resumes there.
    bare = entries(redis_client, store, "a")[0]
    messages, _, _ = parse_sse(get_events(client, bare, queue="emails").text)
    assert [m.data["job_id"] for m in messages] == [second] and email != second


def test_a_bare_id_resumes_the_default_shard_exactly_and_the_others_from_its_time(
    client: falcon.testing.TestClient, store: ShardedStore, redis_client: redis.Redis
) -> None:
    before = submit(store, "")
    time.sleep(0.005)
    after = []
    for shard in ("a", "", "b"):
        after.append(submit(store, shard))
        time.sleep(0.002)  # distinct ms: merged in this order
    bare = entries(redis_client, store, "")[0]
    messages, _, _ = parse_sse(get_events(client, bare).text)
    assert [m.data["job_id"] for m in messages] == after and before not in after


def test_a_merged_response_waits_for_any_shard(
    client: falcon.testing.TestClient, settings: Settings, store: ShardedStore
) -> None:
    _, now = read_all(client, "0")
    app = create_app(settings.with_overrides(events_hold=timedelta(seconds=5)), store)
    waiting = falcon.testing.TestClient(app)
    timer = threading.Timer(0.3, lambda: submit(store, "b"))
    started = time.monotonic()
    timer.start()
    try:
        messages, _, _ = parse_sse(get_events(waiting, now).text)
    finally:
        timer.join()
    assert [m.data.get("shard") for m in messages] == ["b"]
    assert time.monotonic() - started < 3  # answered on the event, not at the 5 s hold


@pytest.mark.parametrize(
    "bad",
    [
        "1-0,",
        ",1-0",
        "a=",
        "=1-0",
        "1-0,2-0",
        "a=1-0,a=2-0",
        "A=1-0",
        "a=1-0, b=1-0",
        "a:1-0",
        "a=1-0=2",
        "a=1-2-3",
        "a=\uff15-0",
    ],
)
def test_a_malformed_composite_id_is_400_malformed_event_id(
    client: falcon.testing.TestClient, bad: str
) -> None:
    result = get_events(client, bad)
    assert result.status_code == 400
    assert result.json["error"]["code"] == "malformed_event_id"


def test_a_shard_the_api_does_not_know_is_400_unknown_event_shard(
    client: falcon.testing.TestClient, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    result = get_events(client, "1-0,a=1-0,zz=1-0")
    assert result.status_code == 400
    assert result.json["error"]["code"] == "unknown_event_shard"
    assert "zz" in result.json["error"]["message"]
    plain = make_settings(redis_server.url, EVENTS_HOLD="200ms")
    unsharded = falcon.testing.TestClient(create_app(plain, JobStore(redis_client, plain)))
    assert get_events(unsharded, "a=1-0").json["error"]["code"] == "unknown_event_shard"
    many = get_events(client, ",".join(f"s{i}=1-0" for i in range(1000)))
    assert many.json["error"]["code"] == "unknown_event_shard"
    assert len(many.json["error"]["message"]) < 200  # names a few, not all it was sent


def test_without_shards_a_response_is_byte_for_byte_the_single_streams(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    plain = make_settings(redis_server.url, EVENTS_HOLD="200ms")
    store = JobStore(redis_client, plain)
    job_id = store.enqueue(JobSpec(type="t")).job_id
    ((entry_id, _),) = redis_client.xrange(store.keys.events)
    data = (
        f'{{"id":"{entry_id}","event":"created","job_id":"{job_id}","status":"pending",'
        f'"queue":"default","type":"t","attempt":0,"at":{entry_id.split("-")[0]}}}'
    )
    result = get_events(falcon.testing.TestClient(create_app(plain, store)), since="0")
    assert result.text == f"retry: 250\n\nid: {entry_id}\nevent: created\ndata: {data}\n\n"


def test_the_cli_and_client_pass_a_composite_id_through(
    settings: Settings, store: ShardedStore, redis_client: redis.Redis
) -> None:
    app = create_app(settings, store)
    api = Client("http://api.test", transport=httpx.WSGITransport(app=app))  # type: ignore[arg-type]
    for shard in ("", "a", "b"):
        submit(store, shard)
    seen = list(api.events(since="0", follow=False))
    later = [submit(store, "b"), submit(store, "a")]
    assert seen[-1].id is not None and "," in seen[-1].id
    resumed = list(api.events(since=seen[-1].id, follow=False))
    assert [event.data["job_id"] for event in resumed] == later
    ctx = Context(
        api_url=api.url, token=None, json=True, progress=False,
        out=io.StringIO(), err=io.StringIO(), stdin=io.StringIO(),
    )  # fmt: skip
    ctx._client = api
    lines = run(ctx, "--since", str(seen[-1].id), "--no-follow")
    assert [line["job_id"] for line in lines] == later


def test_a_hub_keeps_reading_after_a_cluster_client_finds_no_node(
    settings: Settings, store: ShardedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resource, "RECHECK_S", 0.05)
    attempts: list[int] = []

    def connect_reader() -> redis.Redis:
        attempts.append(1)
        if len(attempts) == 1:  # what a RedisCluster raises when no node answers
            raise redis.exceptions.RedisClusterException("Redis Cluster cannot be connected")
        return connect(settings, dedicated=True)

    stopping = threading.Event()
    hub = resource.EventHub(connect_reader, store.keys, stopping, block_ms=50)
    try:
        hub.ensure_started()
        deadline = time.monotonic() + 5
        while hub.newest is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(attempts) == 2 and hub.newest is not None  # it reconnected and reads
    finally:
        stopping.set()


def test_a_plain_job_id_is_followed_in_whichever_shard_holds_it(
    client: falcon.testing.TestClient, store: ShardedStore
) -> None:
    plain = "0123456789abcdef0123456789abcdef"  # as a script makes them (a callback job)
    store.stores["a"].enqueue(JobSpec(type="t", queue="emails"), job_id=plain)
    submit(store, "a")
    messages, _, _ = parse_sse(get_events(client, since="0", job=plain).text)
    assert [(m.data["job_id"], m.data.get("shard")) for m in messages] == [(plain, "a")]


def test_a_hub_that_died_of_anything_starts_again_for_the_next_reader(
    settings: Settings, store: ShardedStore
) -> None:
    attempts: list[int] = []

    def connect_reader() -> redis.Redis:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("a bug in the reader")
        return connect(settings, dedicated=True)

    stopping = threading.Event()
    hub = resource.EventHub(connect_reader, store.keys, stopping, block_ms=50)
    try:
        hub.ensure_started()
        deadline = time.monotonic() + 5
        while len(attempts) < 2 and time.monotonic() < deadline:
            hub.ensure_started()  # what every reader does
            time.sleep(0.01)
        while hub.newest is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert hub.newest is not None
    finally:
        stopping.set()
