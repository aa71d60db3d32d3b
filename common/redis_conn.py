"""Redis clients. No automatic command retries: a Lua call retried blindly after a lost reply
could run twice, so callers decide (the scripts are written to be safe to resend)."""

from __future__ import annotations

from typing import Final

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from workstream.common.settings import Settings

SOCKET_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 3.0

# Error replies that mean "Redis cannot do this now, ask again later", by their first word:
# out of memory under noeviction, a long script running, loading the dataset, a replica that
# refuses writes or lost its master, a failed RDB save refusing writes, too few replicas, a
# cluster slot in motion or down. A command refused this way did not run.
UNAVAILABLE_REPLIES: Final = frozenset(
    {"OOM", "BUSY", "LOADING", "READONLY", "MASTERDOWN", "MISCONF", "NOREPLICAS", "TRYAGAIN",
     "CLUSTERDOWN"}
)  # fmt: skip
# redis-py turns some of them into classes and strips the word from the message; BUSY, MISCONF
# and NOREPLICAS arrive as a plain ResponseError whose message still starts with it.
_UNAVAILABLE_CLASSES: Final[tuple[tuple[type[Exception], str], ...]] = (
    (redis.exceptions.OutOfMemoryError, "OOM"),
    (redis.exceptions.BusyLoadingError, "LOADING"),
    (redis.exceptions.ReadOnlyError, "READONLY"),
    (redis.exceptions.MasterDownError, "MASTERDOWN"),  # before its base, ClusterDownError
    (redis.exceptions.ClusterDownError, "CLUSTERDOWN"),
    (redis.exceptions.TryAgainError, "TRYAGAIN"),
)


def unavailable_reason(ex: BaseException) -> str | None:
    """The reply's first word when `ex` is Redis refusing work for now (see
    UNAVAILABLE_REPLIES), else None. The one place that decides it: the API answers 503 and
    the worker keeps its outcomes and retries."""
    for cls, word in _UNAVAILABLE_CLASSES:
        if isinstance(ex, cls):
            return word
    if isinstance(ex, redis.exceptions.ResponseError):
        word = str(ex).split(" ", 1)[0]
        if word in UNAVAILABLE_REPLIES:
            return word
    return None


def is_unavailable(ex: BaseException) -> bool:
    return unavailable_reason(ex) is not None


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
    if connection is None:
        return
    try:  # a connection never opened is opened here (public API only: no socket peeking)
        reusable = not connection.can_read(timeout=0)  # EOF, or bytes nobody asked for
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        reusable = False
    if not reusable:
        connection.disconnect()  # type: ignore[no-untyped-call]
