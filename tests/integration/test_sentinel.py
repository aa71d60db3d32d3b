"""connect() on a redis+sentinel:// URL: clients reach the primary the sentinels name and move
to a new one by themselves, including away from a demoted primary that stays reachable."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from tests.support.redis_server import free_port
from tests.support.sentinel import MASTER_NAME, SentinelTopology
from workstream.common.jobs import JobSpec
from workstream.common.redis_conn import PRIMARY_CHECK_S, connect
from workstream.common.settings import Settings
from workstream.common.store import JobStore
from workstream.worker.check import check


@pytest.fixture
def topology() -> Iterator[SentinelTopology]:
    started = SentinelTopology.start()
    yield started
    started.stop()


def test_a_store_on_a_sentinel_url_writes_to_the_primary(topology: SentinelTopology) -> None:
    settings = Settings.from_environ({"REDIS_URL": topology.url})
    store = JobStore(connect(settings, dedicated=True), settings)
    job_id = store.enqueue(JobSpec(type="echo")).job_id
    assert topology.primary.client().exists(f"ws:{{default}}:job:{job_id}")


def test_after_a_failover_writes_move_to_the_new_primary_and_leave_the_demoted_one(
    topology: SentinelTopology,
) -> None:
    """SENTINEL FAILOVER demotes a primary that stays up: held connections would keep writing
    to it until Sentinel reconfigures it (READONLY then), and those writes are lost."""
    settings = Settings.from_environ({"REDIS_URL": topology.url})
    client = connect(settings, dedicated=True)
    client.set("before", "1")
    assert client.wait(2, 2000) == 2  # Sentinel promotes without waiting for replicas
    old = topology.primary
    topology.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", MASTER_NAME)  # type: ignore[no-untyped-call]
    new, _ = topology.wait_failover(old)

    def all_sentinels_agree() -> bool:
        return all(s.primary() == ("127.0.0.1", new.port) for s in topology.sentinels)

    deadline = time.monotonic() + 15
    while not all_sentinels_agree():
        assert time.monotonic() < deadline, "sentinels never agreed"
        time.sleep(0.05)
    time.sleep(2 * PRIMARY_CHECK_S)  # the process's watcher has asked them since
    errors = 0
    for i in range(20):
        try:
            client.set(f"after-{i}", "1")
        except redis.exceptions.ConnectionError:  # READONLY from the demoted one, at most once
            errors += 1
    assert errors <= 1
    assert new.client().exists(*[f"after-{i}" for i in range(20)]) == 20 - errors
    assert old.client().get("after-19") in (None, "1")  # a replica of the new one by now, or not
    assert new.client().get("before") == "1"


def test_the_worker_healthcheck_reads_heartbeats_through_the_sentinels(
    topology: SentinelTopology,
) -> None:
    healthy, reason = check(Settings.from_environ({"REDIS_URL": topology.url}), host="h")
    assert not healthy and "cannot read" not in reason  # it read them: none on host "h"


def test_a_primary_that_answers_masterdown_is_dropped_as_a_lost_connection(
    topology: SentinelTopology,
) -> None:
    """A replica that lost its master and serves no stale data answers MASTERDOWN: the
    connection is dropped (a ConnectionError, retried by every caller) rather than kept."""
    client = connect(Settings.from_environ({"REDIS_URL": topology.url}))
    client.set("k", "1")
    primary = topology.primary.client()
    primary.config_set("replica-serve-stale-data", "no")
    primary.replicaof("127.0.0.1", str(free_port()))  # nobody listens there
    with pytest.raises(redis.exceptions.ConnectionError, match="MASTERDOWN"):
        client.get("k")
