"""Session-wide fixtures: one private redis-server, flushed before each test that uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support.redis_server import RedisServer
from workstream.common.settings import Settings
from workstream.common.store import JobStore


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-chaos", action="store_true", help="run full-size chaos suites")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


def make_settings(redis_url: str, **env: str) -> Settings:
    return Settings.from_environ({"REDIS_URL": redis_url, **env})


@pytest.fixture
def settings(redis_server: RedisServer, redis_client: redis.Redis) -> Settings:
    return make_settings(redis_server.url, RETRY_BACKOFF="0s")


@pytest.fixture
def store(settings: Settings, redis_client: redis.Redis) -> JobStore:
    return JobStore(redis_client, settings)
