"""A live stack per test: real workstream-api and workstream-worker processes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import RedisServer
from tests.support.stack import Stack

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack(
    redis_server: RedisServer, redis_client: redis.Redis, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:80]
    live = Stack(
        redis_server.url,
        REPO / "test-output" / "e2e" / name,
        env={"WORKER_HANDLERS": "tests.handlers", "LOG_LEVEL": "info"},
    )
    yield live
    live.stop_all()
