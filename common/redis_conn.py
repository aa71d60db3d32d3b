"""Redis clients. No automatic command retries: a Lua call retried blindly after a lost reply
could run twice, so callers decide (the scripts are written to be safe to resend)."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from workstream.common.settings import Settings

SOCKET_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 3.0


def connect(
    settings: Settings,
    *,
    max_connections: int | None = None,
    socket_timeout: float | None = None,
    dedicated: bool = False,
) -> redis.Redis:
    """A client with decoded (str) replies. `dedicated` holds one connection for one thread
    (no pool checkout per command: cheaper on hot paths) and connects at once."""
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=socket_timeout or SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_keepalive=True,
        health_check_interval=15,
        retry=Retry(NoBackoff(), 0),
        max_connections=max_connections,
        single_connection_client=dedicated,
    )


def reopen_if_dropped(client: redis.Redis) -> None:
    """Before using a dedicated client: if the server or the network closed its idle
    connection, disconnect so the next command reconnects instead of failing. redis-py does
    this check only for pooled connections; about 1 us (one non-blocking read)."""
    connection = client.connection
    if connection is None or getattr(connection, "_sock", None) is None:
        return
    try:
        reusable = not connection.can_read(timeout=0)  # EOF, or bytes nobody asked for
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        reusable = False
    if not reusable:
        connection.disconnect()  # type: ignore[no-untyped-call]
