"""A private Sentinel topology on loopback: one primary, replicas and sentinels, each a
redis-server process this test started and stops by pid (see tests.support.redis_server)."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from tests.support.redis_server import RedisServer, free_port, redis_server_binary

MASTER_NAME = "ws"
# Short, so a SIGKILLed primary is replaced in a few seconds rather than Sentinel's 30 s + 3 min.
DOWN_AFTER_MS = 500
FAILOVER_TIMEOUT_MS = 3000
# A replica's first sync would wait 5 s (repl-diskless-sync-delay) for more replicas to join.
SERVER_ARGS = ("--repl-diskless-sync-delay", "0")


@dataclass
class SentinelProcess:
    """`redis-server <conf> --sentinel`; Sentinel rewrites its config file, so each has one."""

    directory: Path
    primary_port: int
    port: int = field(default_factory=free_port)
    myid: str = field(default_factory=lambda: os.urandom(20).hex())
    process: subprocess.Popen[bytes] | None = None

    def start(
        self,
        peers: Sequence[SentinelProcess] = (),
        replica_ports: Sequence[int] = (),
    ) -> SentinelProcess:
        # Told its peers and the replicas up front, a sentinel is ready at once instead of
        # after its hello messages (2 s) and INFO rounds (10 s) found them.
        known = "".join(
            f"sentinel known-sentinel {MASTER_NAME} 127.0.0.1 {p.port} {p.myid}\n"
            for p in peers
            if p is not self
        ) + "".join(f"sentinel known-replica {MASTER_NAME} 127.0.0.1 {r}\n" for r in replica_ports)
        config = self.directory / "sentinel.conf"
        config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.directory}\n"
            f"sentinel myid {self.myid}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 2\n" + known
        )
        with open(self.directory / "sentinel.log", "ab") as log:
            self.process = subprocess.Popen(
                [redis_server_binary(), str(config), "--sentinel"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=1
        )

    def primary(self) -> tuple[str, int] | None:
        """The address this sentinel names as primary now, or None when it cannot say."""
        try:
            address: Any = self.client().sentinel_get_master_addr_by_name(MASTER_NAME)
        except redis.exceptions.RedisError:
            return None
        return (str(address[0]), int(address[1])) if address else None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass
class SentinelTopology:
    primary: RedisServer
    replicas: list[RedisServer]
    sentinels: list[SentinelProcess]

    @classmethod
    def start(
        cls, replicas: int = 2, sentinels: int = 3, timeout_s: float = 20
    ) -> SentinelTopology:
        root = Path(tempfile.mkdtemp(prefix="ws-sentinel-"))

        def folder(name: str) -> Path:
            path = root / name
            path.mkdir()
            return path

        primary = RedisServer(directory=folder("primary"), extra_args=SERVER_ARGS)
        topology = cls(primary, [], [])
        try:
            primary.start()
            for i in range(replicas):
                replica = RedisServer(
                    directory=folder(f"replica-{i}"),
                    extra_args=(*SERVER_ARGS, "--replicaof", "127.0.0.1", str(primary.port)),
                )
                topology.replicas.append(replica.start())
            planned = [
                SentinelProcess(folder(f"sentinel-{i}"), primary.port) for i in range(sentinels)
            ]
            ports = [r.port for r in topology.replicas]
            for sentinel in planned:
                topology.sentinels.append(sentinel.start(planned, ports))
            topology.wait_settled(timeout_s)
        except BaseException:
            topology.stop()
            raise
        return topology

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    def wait_settled(self, timeout_s: float) -> None:
        """Until every sentinel sees the other sentinels and every live replica in sync: only
        then can they agree on a failover (quorum 2 of 3, a majority to elect a leader)."""
        live = [r for r in self.replicas if r.process and r.process.poll() is None]
        deadline = time.monotonic() + timeout_s
        state: list[dict[str, Any]] | Exception | None = None
        while time.monotonic() < deadline:
            try:
                state = [
                    cast("dict[str, Any]", s.client().sentinel_master(MASTER_NAME))
                    for s in self.sentinels
                ]
                links = [r.client(socket_timeout=1).info("replication") for r in live]
            except redis.exceptions.RedisError as ex:
                state = ex
            else:
                if all(
                    m["num-other-sentinels"] == len(self.sentinels) - 1
                    and m["num-slaves"] >= len(live)
                    for m in state
                ) and all(link.get("master_link_status") == "up" for link in links):
                    return
            time.sleep(0.1)
        raise RuntimeError(f"sentinel topology not settled in {timeout_s}s: {state}")

    def current_primary(self) -> RedisServer | None:
        """The server a majority of the sentinels names as primary."""
        votes = [s.primary() for s in self.sentinels]
        for server in self.servers:
            if votes.count(("127.0.0.1", server.port)) * 2 > len(self.sentinels):
                return server
        return None

    def wait_failover(self, old: RedisServer, timeout_s: float = 30) -> tuple[RedisServer, float]:
        """Until a majority of the sentinels names another primary that answers as master;
        returns it and the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            new = self.current_primary()
            if new is not None and new is not old:
                try:
                    if new.client(socket_timeout=1).info("replication")["role"] == "master":
                        return new, time.monotonic() - started
                except redis.exceptions.RedisError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"no failover in {timeout_s}s: {[s.primary() for s in self.sentinels]}")

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()
