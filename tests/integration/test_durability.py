"""DURABILITY=replicated: a write a client is told about has reached REPLICA_ACKS replicas
(WAIT on the write's own connection), else 503 not_replicated and the client resends with its
idempotency key. A real primary and two real replicas on loopback."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest

from tests.support.redis_server import RedisServer
from tests.support.sentinel import SERVER_ARGS
from tests.support.stack import wait_until
from workstream.api.app import create_app
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.store import JobStore


class Replicated:
    """A primary with two replicas; replicas can be stopped and started again."""

    def __init__(self, root: Path) -> None:
        (root / "primary").mkdir()
        self.primary = RedisServer(directory=root / "primary", extra_args=SERVER_ARGS).start()
        self.replicas: list[RedisServer] = []
        for i in range(2):
            (root / f"replica-{i}").mkdir()
            args = (*SERVER_ARGS, "--replicaof", "127.0.0.1", str(self.primary.port))
            self.replicas.append(RedisServer(directory=root / f"replica-{i}", extra_args=args))
        self.start_replicas()

    def start_replicas(self) -> None:
        for replica in self.replicas:
            replica.start()
        primary = self.primary.client()
        primary.set("sync", "1")  # online, not still syncing: both confirm a write
        assert wait_until(lambda: primary.wait(2, 100) == 2, 10)

    def stop_replicas(self) -> None:
        for replica in self.replicas:
            replica.kill()

    def stall_replicas(self, stalled: bool) -> None:
        """SIGSTOP/SIGCONT: still connected, acknowledging nothing (a replica that lags)."""
        for replica in self.replicas:
            if replica.process is not None and replica.process.poll() is None:
                os.kill(replica.process.pid, signal.SIGSTOP if stalled else signal.SIGCONT)

    def client(self, **env: str) -> falcon.testing.TestClient:
        settings = Settings.from_environ({"REDIS_URL": self.primary.url, **env})
        return falcon.testing.TestClient(
            create_app(settings, JobStore(connect(settings), settings))
        )

    def stop(self) -> None:
        self.stall_replicas(False)
        for server in (*self.replicas, self.primary):
            server.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Replicated]:
    topology = Replicated(tmp_path)
    yield topology
    topology.stop()


REPLICATED = {"DURABILITY": "replicated", "REPLICA_ACK_TIMEOUT": "200ms"}
JOB = {"type": "echo", "payload": {"n": 1}, "idempotency_key": "order-17"}


def test_replicated_submission_answers_201_once_the_replicas_have_the_job(
    servers: Replicated,
) -> None:
    client = servers.client(**REPLICATED, REPLICA_ACKS="2")
    created = client.simulate_post("/jobs", json=JOB)
    assert created.status_code == 201
    for replica in servers.replicas:
        job = f"ws:{{default}}:job:{created.json['id']}"
        assert replica.client().hget(job, "status") == "pending"


def test_replicated_submission_with_replicas_down_answers_503_not_replicated_and_a_resend_201s(
    servers: Replicated,
) -> None:
    client = servers.client(**REPLICATED)
    servers.stop_replicas()
    refused = client.simulate_post("/jobs", json=JOB)
    assert refused.status_code == 503
    assert refused.json["error"]["code"] == "not_replicated"
    assert "idempotency key" in refused.json["error"]["message"]
    assert refused.headers["Retry-After"]
    # It ran on the primary: the job may exist, and the resend finds it rather than doubling it.
    assert len(servers.primary.client().keys("ws:{default}:job:*")) == 1

    servers.start_replicas()
    resent = client.simulate_post("/jobs", json=JOB)
    assert resent.status_code == 200  # the idempotency key's original job
    assert len(servers.primary.client().keys("ws:{default}:job:*")) == 1


def test_replicated_batch_and_state_changes_answer_503_while_no_replica_confirms(
    servers: Replicated,
) -> None:
    client = servers.client(**REPLICATED)
    job_id = client.simulate_post("/jobs", json={"type": "echo"}).json["id"]
    servers.stop_replicas()
    batch = client.simulate_post("/jobs/batch", json={"jobs": [{"type": "echo"}]})
    assert (batch.status_code, batch.json["error"]["code"]) == (503, "not_replicated")
    cancel = client.simulate_post(f"/jobs/{job_id}/cancel")
    assert (cancel.status_code, cancel.json["error"]["code"]) == (503, "not_replicated")


def test_a_refusal_writes_nothing_so_it_keeps_its_own_answer_with_replicas_down(
    servers: Replicated,
) -> None:
    client = servers.client(**REPLICATED)
    servers.stop_replicas()
    missing = client.simulate_post("/jobs/0123456789abcdef0123456789abcdef/cancel")
    assert missing.status_code == 404


def test_local_durability_acknowledges_without_replicas(servers: Replicated) -> None:
    servers.stop_replicas()
    assert servers.client().simulate_post("/jobs", json=JOB).status_code == 201


def test_replicated_writes_find_their_script_on_a_primary_that_never_loaded_it(
    servers: Replicated,
) -> None:
    servers.primary.client().script_flush()  # as on a promoted replica: no script cache
    client = servers.client(**REPLICATED)
    assert client.simulate_post("/jobs", json={"type": "echo"}).status_code == 201


def test_a_resend_is_acknowledged_only_once_its_original_write_is_replicated(
    servers: Replicated,
) -> None:
    """The resend writes nothing (the key names the job), so WAIT must still cover the
    original: here the resend arrives on another API process, on a connection opened before
    that write (WAIT counts a connection's own writes only)."""
    other_api = servers.client(**REPLICATED)
    assert other_api.simulate_get("/jobs").status_code == 200  # opens its connection
    assert servers.primary.client().wait(2, 2000) == 2  # the replicas have all before it
    servers.stall_replicas(True)
    refused = servers.client(**REPLICATED).simulate_post("/jobs", json=JOB)
    assert refused.json["error"]["code"] == "not_replicated"
    resent = other_api.simulate_post("/jobs", json=JOB)
    assert (resent.status_code, resent.json["error"]["code"]) == (503, "not_replicated")
    servers.stall_replicas(False)
    assert other_api.simulate_post("/jobs", json=JOB).status_code == 200
