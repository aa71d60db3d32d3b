"""Fault-injection fixtures: a private redis-server per test (with the suite's own options) and
real WorkStream processes, all started by the test and stopped by pid. Full-size runs carry the
`chaos` mark and run only with --run-chaos (make chaos)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer
from tests.support.stack import Stack


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-chaos"):
        return
    skip = pytest.mark.skip(reason="full-size chaos run: use --run-chaos (make chaos)")
    for item in items:
        if "chaos" in item.keywords:
            item.add_marker(skip)


RedisFactory = Callable[..., RedisServer]
StackFactory = Callable[..., Stack]


@pytest.fixture
def make_redis(tmp_path: Path) -> Iterator[RedisFactory]:
    """Starts redis-servers with extra arguments; every one is stopped at teardown."""
    servers: list[RedisServer] = []

    def start(*extra_args: str) -> RedisServer:
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        server = RedisServer(directory=directory, extra_args=extra_args).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[StackFactory]:
    """Stacks of api/worker processes on one Redis URL; every process is stopped at teardown."""
    stacks: list[Stack] = []

    def create(redis_url: str, **env: str) -> Stack:
        stack = Stack(redis_url, tmp_path / f"logs-{len(stacks)}", env=dict(env))
        stacks.append(stack)
        return stack

    yield create
    for stack in stacks:
        stack.stop_all(timeout_s=10)
