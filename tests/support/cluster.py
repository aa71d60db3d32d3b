"""A private Redis Cluster on loopback: masters with one replica each, every node a
redis-server process this test started and stops by pid (see tests.support.redis_server),
joined by `redis-cli --cluster create`."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.support.redis_server import RedisServer

# A cluster node also listens on port + 10000 (the cluster bus): both must be free.
BUS_OFFSET = 10000
# Short, so a SIGKILLed master is replaced by its replica in a few seconds (default 15 s).
NODE_TIMEOUT_MS = 1000


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port(taken: set[int]) -> int:
    """A loopback port p with p + 10000 free too, below the usual ephemeral range so the bus
    port stays valid; never one in `taken` (ports planned for other nodes)."""
    for _ in range(1000):
        port = random.randint(12000, 22000)
        if {port, port + BUS_OFFSET} & taken:
            continue
        if _port_free(port) and _port_free(port + BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def redis_cli_binary() -> str:
    found = shutil.which("redis-cli")
    if found is None:
        raise RuntimeError("redis-cli not found (needed to create a cluster)")
    return found


@dataclass
class RedisCluster:
    """Masters first in `nodes`, then their replicas (redis-cli pairs them, see replica_of)."""

    nodes: list[RedisServer] = field(default_factory=list)
    masters: int = 3

    @classmethod
    def start(cls, masters: int = 3, replicas: int = 1, timeout_s: float = 30) -> RedisCluster:
        root = Path(tempfile.mkdtemp(prefix="ws-cluster-"))
        cluster = cls(masters=masters)
        taken: set[int] = set()
        try:
            for i in range(masters * (1 + replicas)):
                port = free_cluster_port(taken)
                taken |= {port, port + BUS_OFFSET}
                folder = root / f"node-{i}"
                folder.mkdir()
                node = RedisServer(
                    port=port,
                    directory=folder,
                    extra_args=(
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", str(folder / "nodes.conf"),
                        "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                        "--repl-diskless-sync-delay", "0",
                        # a master with no live replica still serves (the test kills nodes)
                        "--cluster-require-full-coverage", "no",
                    ),
                )  # fmt: skip
                cluster.nodes.append(node.start())
            if masters < 3 and replicas == 0:
                cluster._join_by_hand()
            else:
                created = subprocess.run(
                    [
                        redis_cli_binary(), "--cluster", "create",
                        *(f"127.0.0.1:{n.port}" for n in cluster.nodes),
                        "--cluster-replicas", str(replicas), "--cluster-yes",
                    ],
                    capture_output=True, text=True, timeout=timeout_s, check=False,
                )  # fmt: skip
                if created.returncode != 0:
                    raise RuntimeError(f"redis-cli --cluster create: {created.stdout[-2000:]}")
            cluster.wait_ok(timeout_s)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _join_by_hand(self) -> None:
        """redis-cli refuses a cluster of fewer than 3 masters: each node takes an equal range
        of the slots and meets the first."""
        count = len(self.nodes)
        for i, node in enumerate(self.nodes):
            first, last = i * 16384 // count, (i + 1) * 16384 // count - 1
            node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)  # type: ignore[no-untyped-call]
            if i:
                node.client().execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port)  # type: ignore[no-untyped-call]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[: self.masters])
        return f"redis+cluster://{hosts}/0"

    def live(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def info(self, node: RedisServer) -> dict[str, str]:
        text: Any = node.client(socket_timeout=1).execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
        if isinstance(text, dict):
            return {str(k): str(v) for k, v in text.items()}
        return dict(line.split(":", 1) for line in str(text).splitlines() if ":" in line)

    def wait_ok(self, timeout_s: float = 30) -> None:
        """Until every live node says cluster_state:ok and knows every slot, and every replica
        has finished its first sync."""
        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            try:
                infos = [self.info(n) for n in self.live()]
                synced = all(
                    n.client(socket_timeout=1).info("replication").get("master_link_status", "up")
                    == "up"
                    for n in self.live()
                )
                if synced and all(
                    i.get("cluster_state") == "ok" and i.get("cluster_slots_ok") == "16384"
                    for i in infos
                ):
                    return
                last = infos
            except redis.exceptions.RedisError as ex:
                last = ex
            time.sleep(0.1)
        raise RuntimeError(f"cluster not ok in {timeout_s}s: {last}")

    def client(self) -> redis.RedisCluster:
        node = self.live()[0]
        return redis.RedisCluster(host="127.0.0.1", port=node.port, decode_responses=True)

    def master_ports(self) -> list[int]:
        """The ports of the nodes that are masters now (a failover changes them)."""
        ports = []
        for node in self.live():
            role = node.client(socket_timeout=1).info("replication").get("role")
            if role == "master":
                ports.append(node.port)
        return sorted(ports)

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def master_of(self, key: str) -> RedisServer:
        """The node that is master of `key`'s slot now."""
        client = self.client()
        try:
            found = client.get_node_from_key(key, replica=False)  # type: ignore[no-untyped-call]
            assert found is not None
            return self.node(int(found.port))
        finally:
            client.close()

    def replica_of(self, master: RedisServer) -> RedisServer:
        for node in self.live():
            info = node.client(socket_timeout=1).info("replication")
            if info.get("role") == "slave" and int(info.get("master_port", 0)) == master.port:
                return node
        raise LookupError(f"no live replica of {master.port}")

    def wait_promoted(self, replica: RedisServer, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if replica.client(socket_timeout=1).info("replication").get("role") == "master":
                    self.wait_ok(max(1.0, deadline - time.monotonic()))
                    return
            except redis.exceptions.RedisError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"replica {replica.port} not promoted in {timeout_s}s")

    def node_id(self, node: RedisServer) -> str:
        return str(node.client().execute_command("CLUSTER", "MYID"))  # type: ignore[no-untyped-call]

    def start_moving(self, slot: int, target: RedisServer, keys: int | None = None) -> None:
        """A resharding of one slot, begun: `target` IMPORTING, its master MIGRATING, and the
        first `keys` keys (all when None) migrated."""
        source = self.master_of_slot(slot)
        source_id, target_id = self.node_id(source), self.node_id(target)
        target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)  # type: ignore[no-untyped-call]
        source.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)  # type: ignore[no-untyped-call]
        found = source.client().execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10000)  # type: ignore[no-untyped-call]
        names = list(found)[:keys] if keys is not None else list(found)
        if names:
            source.client().execute_command(  # type: ignore[no-untyped-call]
                "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *names
            )

    def finish_moving(self, slot: int, target: RedisServer) -> None:
        """Migrates what is left of the slot and gives it to `target` on every master."""
        source = self.master_of_slot(slot)
        self._migrate_rest(slot, source, target)
        target_id = self.node_id(target)
        for port in self.master_ports():
            self.node(port).client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)  # type: ignore[no-untyped-call]
        self.wait_ok()

    def _migrate_rest(self, slot: int, source: RedisServer, target: RedisServer) -> None:
        for _ in range(100):
            found = source.client().execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)  # type: ignore[no-untyped-call]
            if not found:
                return
            source.client().execute_command(  # type: ignore[no-untyped-call]
                "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *found
            )

    def master_of_slot(self, slot: int) -> RedisServer:
        """The node that owns `slot` now (by the first live node's CLUSTER SLOTS)."""
        ranges = self.live()[0].client().execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        for first, last, master, *_ in ranges:
            if int(first) <= slot <= int(last):
                return self.node(int(master[1]))
        raise LookupError(f"no master for slot {slot}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
