"""GET /events on a real three-master Redis Cluster with QUEUE_SHARDS: each shard's scripts
write their own stream (in their own slot), the API merges them and resumes every shard from
a composite id."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import falcon.testing
import pytest

from tests.integration.test_events import get_events, parse_sse
from tests.support.cluster import RedisCluster
from workstream.api.app import create_app
from workstream.common import events
from workstream.common.jobs import JobSpec
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.shards import ShardedStore, open_store


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    started = RedisCluster.start(replicas=0)
    yield started
    started.stop()


def test_jobs_on_three_shards_of_a_cluster_merge_and_resume_from_a_composite_id(
    cluster: RedisCluster,
) -> None:
    settings = Settings.from_environ(
        {"REDIS_URL": cluster.url, "QUEUE_SHARDS": "emails:a,images:b", "EVENTS_HOLD": "200ms"}
    )
    store = open_store(connect(settings, dedicated=True), settings)
    assert isinstance(store, ShardedStore)
    stopping = threading.Event()
    client = falcon.testing.TestClient(create_app(settings, store, stopping=stopping))
    try:
        first = []
        for queue in ("emails", "default", "images"):
            first.append(store.enqueue(JobSpec(type="t", queue=queue)).job_id)
            time.sleep(0.002)
        messages, last_id, _ = parse_sse(get_events(client, since="0").text)
        assert [m.data["job_id"] for m in messages] == first
        assert last_id is not None and set(events.parse_positions(last_id)) == {"", "a", "b"}
        later = []
        for queue in ("images", "emails", "default"):
            later.append(store.enqueue(JobSpec(type="t", queue=queue)).job_id)
            time.sleep(0.002)
        messages, _, _ = parse_sse(get_events(client, last_id).text)
        assert [m.data["job_id"] for m in messages] == later  # nothing missed, nothing twice
    finally:
        stopping.set()
