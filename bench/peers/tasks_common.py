"""The Redis work of a peer's task bodies, kept identical across peers: one INCR for a noop job,
one EVALSHA of LATENCY_LUA for a latency job (each a single round trip)."""

from __future__ import annotations

import os
from typing import Any

import redis

from bench.core import LATENCY_LUA

REDIS_URL_ENV = "BENCH_REDIS_URL"

_client: redis.Redis | None = None
_script: Any = None
_pid = 0


def redis_url() -> str:
    return os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:1/0")


def task_client() -> redis.Redis:
    """One client per worker process (re-created after a fork)."""
    global _client, _script, _pid
    if _client is None or _pid != os.getpid():
        _client = redis.Redis.from_url(redis_url())
        _script = _client.register_script(LATENCY_LUA)
        _pid = os.getpid()
    return _client


def do_incr(key: str) -> None:
    task_client().incr(key)


def do_latency(key: str, list_key: str, t0_us: int) -> None:
    task_client()
    _script(keys=[key, list_key], args=[t0_us])
