"""The compose sentinel profile's own Redis settings, run by real redis-server processes on
loopback (no Docker engine here): each service name becomes 127.0.0.1 and each port a free one;
every other line is the one compose would run."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import RedisServer, free_port, redis_server_binary
from tests.support.stack import wait_until
from tests.unit.test_deploy_files import (
    command_words,
    documented_sentinel_url,
    sentinel_config,
    service,
)
from workstream.common.redis_conn import parse_sentinel_url

SENTINEL_URL_MASTER = "ws"


def on_loopback(words: list[str], primary_port: int) -> list[str]:
    """Service names -> 127.0.0.1 and the primary's 6379 -> its private port."""
    text = "\n".join(words)
    for name in ("redis-replica-1", "redis-replica-2", "sentinel-1", "sentinel-2", "sentinel-3"):
        text = text.replace(name, "127.0.0.1")
    text = text.replace("redis 6379", f"127.0.0.1 {primary_port}")
    return text.split("\n")


@pytest.fixture
def primary() -> Iterator[RedisServer]:
    words = command_words(service("redis")["command"])
    server = RedisServer(extra_args=tuple(words[1:])).start()  # AOF and the announced name
    try:
        yield server
    finally:
        server.stop()


def test_a_replica_started_as_compose_starts_it_syncs_from_the_primary(
    primary: RedisServer,
) -> None:
    words = command_words(service("redis-replica-1")["command"])
    args = on_loopback(words[1:], primary.port)
    at = args.index("--replicaof")
    args[at + 1 : at + 3] = ["127.0.0.1", str(primary.port)]
    replica = RedisServer(extra_args=tuple(args)).start()
    try:
        primary.client().set("probe", "1")
        assert wait_until(lambda: replica.client().get("probe") == "1", 10)
        assert replica.client().info("replication")["role"] == "slave"
    finally:
        replica.stop()


def test_a_sentinel_with_the_compose_config_monitors_the_primary_by_the_urls_master_name(
    primary: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    lines = on_loopback(sentinel_config("sentinel-1"), primary.port)
    lines = [f"port {port}" if line.startswith("port ") else line for line in lines]
    config = tmp_path / "sentinel.conf"
    config.write_text("\n".join(["bind 127.0.0.1", f"dir {tmp_path}", *lines]) + "\n")
    with open(tmp_path / "sentinel.log", "ab") as log:
        process = subprocess.Popen(
            [redis_server_binary(), str(config), "--sentinel"], stdout=log, stderr=log
        )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=1)

        def master() -> object:
            try:
                return client.sentinel_get_master_addr_by_name(SENTINEL_URL_MASTER)
            except redis.exceptions.ConnectionError:
                return None

        assert wait_until(lambda: master() is not None, 10), (tmp_path / "sentinel.log").read_text()
        assert tuple(master()) == ("127.0.0.1", primary.port)  # type: ignore[arg-type]
        state: dict[str, object] = client.sentinel_master(SENTINEL_URL_MASTER)  # type: ignore[assignment]
        assert state["quorum"] == 2
    finally:
        process.terminate()
        process.wait(10)


def test_the_master_name_the_sentinels_monitor_is_the_one_in_the_documented_url() -> None:
    assert parse_sentinel_url(documented_sentinel_url()).master_name == SENTINEL_URL_MASTER
