"""Redis clients. No automatic command retries: a Lua call retried blindly after a lost reply
could run twice, so callers decide (the scripts are written to be safe to resend).

REDIS_URL is a plain `redis://`, `rediss://` or `unix://` URL, or a Sentinel one:
`redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<master-name>[/<db>]`
(`rediss+sentinel://` for TLS to the sentinels and the data nodes). The URL's credentials
authenticate to the primary; sentinels that require their own take `?sentinel_username=` and
`?sentinel_password=`. Every new connection asks the sentinels for the primary, so a failover
is followed by reconnecting: a connection error, READONLY (a demoted primary) or MASTERDOWN
drops the connection, and the callers' own capped backoff (the worker's fetcher and duties,
the API client's Retry-After) paces the rediscovery.

A Redis Cluster URL names some of its nodes (the client finds the rest):
`redis+cluster://[[user]:password@]host[:port][,host[:port]...][/0]` (`rediss+cluster://` for
TLS). redis-py's RedisCluster follows MOVED/ASK redirections (a resharding) and reads the slot
map again after a connection error (a failover); it never resends a command whose reply was
lost, as above."""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, ClusterPipeline
from redis.retry import Retry
from redis.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)

if TYPE_CHECKING:  # settings imports this module to check REDIS_URL
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
    # A cluster's redirections ran out (redis-py follows MOVED/ASK and retries TRYAGAIN up to
    # 16 times): a slot in motion whose keys are split between two nodes, or a failover.
    (redis.exceptions.ClusterError, "TRYAGAIN"),
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
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": socket_timeout or SOCKET_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_keepalive": True,
        "health_check_interval": 15,
        "retry": Retry(NoBackoff(), 0),
        "max_connections": max_connections,
    }
    if is_cluster_url(settings.redis_url):
        # A pool per node; `dedicated` cannot hold one connection for every node.
        return cast("redis.Redis", cluster_client(parse_cluster_url(settings.redis_url), **options))
    if not is_sentinel_url(settings.redis_url):
        return redis.Redis.from_url(
            settings.redis_url, single_connection_client=dedicated, **options
        )
    # Never single_connection_client here: redis-py reopens a held connection at its old
    # address, so after READONLY it would reach the demoted primary again and again. A pool
    # checkout asks the sentinels whenever it opens a connection, and drops one to a former
    # primary when it comes back (about 1 us more per command).
    pool = sentinel_pool(parse_sentinel_url(settings.redis_url), **options)
    return redis.Redis.from_pool(pool)


# -- Sentinel -------------------------------------------------------------------------------

SENTINEL_SCHEMES: Final = ("redis+sentinel", "rediss+sentinel")
SENTINEL_PORT: Final = 26379
# A sentinel that does not answer is skipped for the next: keep each try short, and never
# retry inside redis-py (its default retries with backoff would stall every reconnect).
SENTINEL_TIMEOUT_S = 1.0
_SENTINEL_QUERY: Final = ("sentinel_username", "sentinel_password", "ssl_ca_certs", "ssl_cert_reqs")


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None  # the primary's (and replicas') credentials
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_cert_reqs: str | None = None


def is_sentinel_url(url: str) -> bool:
    return url.strip().lower().startswith(tuple(f"{s}://" for s in SENTINEL_SCHEMES))


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Raises ValueError naming what is wrong (never echoing the URL: it may hold a secret)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in SENTINEL_SCHEMES:
        raise ValueError("expected a redis+sentinel:// or rediss+sentinel:// URL")
    username, password, hostlist = _credentials(parts.netloc)
    sentinels = tuple(_host_port(entry, SENTINEL_PORT, "sentinel") for entry in hostlist.split(","))
    path = [unquote(p) for p in parts.path.split("/")[1:]]
    if not path or not path[0]:
        raise ValueError("expected the master name after the sentinels: .../<master-name>/<db>")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError("expected .../<master-name> or .../<master-name>/<db> (db a number)")
    query = _options(parts.query, _SENTINEL_QUERY)
    return SentinelUrl(
        sentinels=sentinels,
        master_name=path[0],
        db=int(path[1]) if len(path) == 2 and path[1] else 0,
        username=username,
        password=password,
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
        ssl=parts.scheme.lower() == "rediss+sentinel",
        ssl_ca_certs=query.get("ssl_ca_certs") or None,
        ssl_cert_reqs=query.get("ssl_cert_reqs") or None,
    )


def _credentials(netloc: str) -> tuple[str | None, str | None, str]:
    """`user:password@hosts` -> (user, password, hosts), each part percent-decoded."""
    userinfo, at, hostlist = netloc.rpartition("@")
    if not at:
        return None, None, hostlist
    user, colon, secret = userinfo.partition(":")
    return unquote(user) or None, unquote(secret) if colon else None, hostlist


def _options(query_text: str, known: tuple[str, ...]) -> dict[str, str]:
    """The URL's query options, each one of `known` (ssl_cert_reqs checked)."""
    query: dict[str, str] = {}
    for name, value in parse_qsl(query_text, keep_blank_values=True, strict_parsing=False):
        if name not in known:
            raise ValueError(f"unknown option {name!r}; known: {', '.join(known)}")
        query[name] = value
    if query.get("ssl_cert_reqs", "required") not in ("none", "optional", "required"):
        raise ValueError("ssl_cert_reqs: expected none, optional or required")
    return query


def _host_port(entry: str, default_port: int, what: str) -> tuple[str, int]:
    entry = entry.strip()
    if entry.startswith("["):  # [IPv6]:port
        host, _, rest = entry[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"expected [address]:port for an IPv6 {what}")
    else:
        host, _, port_text = entry.partition(":")
    if not host:
        raise ValueError(f"expected {what}s as host[:port], comma-separated")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"expected a {what} port 1-65535")
    return host, int(port_text)


class _PrimaryConnection(SentinelManagedConnection):
    """redis-py drops a connection that answers READONLY (a demoted primary) so the next one
    asks the sentinels again; a replica answering MASTERDOWN is no primary either."""

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except redis.exceptions.MasterDownError:
            self.disconnect()  # type: ignore[no-untyped-call]
            raise redis.exceptions.ConnectionError("MASTERDOWN: not the primary") from None


class _PrimarySSLConnection(_PrimaryConnection, SentinelManagedSSLConnection):
    pass


def sentinel_pool(url: SentinelUrl, **options: Any) -> SentinelConnectionPool:
    """A pool of connections to the current primary, found through the sentinels on each
    connect (redis-py's SentinelConnectionPool; idle connections to a former primary are
    closed when the sentinels name a new one)."""
    tls: dict[str, Any] = {}
    if url.ssl:
        tls = {"ssl": True, "ssl_ca_certs": url.ssl_ca_certs}
        if url.ssl_cert_reqs:
            tls["ssl_cert_reqs"] = url.ssl_cert_reqs
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(url.sentinels),
        sentinel_kwargs={
            "username": url.sentinel_username,
            "password": url.sentinel_password,
            "socket_timeout": SENTINEL_TIMEOUT_S,
            "socket_connect_timeout": SENTINEL_TIMEOUT_S,
            "retry": Retry(NoBackoff(), 0),
            **tls,
        },
    )
    pool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
        url.master_name,
        sentinel,
        connection_class=_PrimarySSLConnection if url.ssl else _PrimaryConnection,
        db=url.db,
        username=url.username,
        password=url.password,
        **{k: v for k, v in tls.items() if k != "ssl"},
        **options,
    )
    _watch(pool)
    return pool


# redis-py asks the sentinels only when it opens a connection, so a connection to a primary
# that was demoted while it stays reachable (SENTINEL FAILOVER, a partition healing) keeps
# writing to it until Sentinel reconfigures it (up to its 10 s INFO period): writes a failover
# then discards. One thread per process asks the sentinels once a second; a new address makes
# redis-py close the idle connections, drop busy ones when they are released, and
# reopen_if_dropped drops a dedicated one.
PRIMARY_CHECK_S = 1.0
_watched: weakref.WeakSet[SentinelConnectionPool] = weakref.WeakSet()
_watch_lock = threading.Lock()
_watcher: threading.Thread | None = None


def _watch(pool: SentinelConnectionPool) -> None:
    global _watcher
    with _watch_lock:
        _watched.add(pool)
        if _watcher is None or not _watcher.is_alive():
            _watcher = threading.Thread(target=_watch_primaries, name="sentinel-watch", daemon=True)
            _watcher.start()


def _watch_primaries() -> None:
    while True:
        time.sleep(PRIMARY_CHECK_S)
        with _watch_lock:
            pools = list(_watched)
        for pool in pools:
            try:
                pool.get_master_address()  # type: ignore[no-untyped-call]
            except redis.exceptions.RedisError:
                pass  # no primary now: connections fail and are rediscovered on reconnect


# -- Cluster ---------------------------------------------------------------------------------

CLUSTER_SCHEMES: Final = ("redis+cluster", "rediss+cluster")
CLUSTER_PORT: Final = 6379
_CLUSTER_QUERY: Final = ("ssl_ca_certs", "ssl_cert_reqs")


@dataclass(frozen=True)
class ClusterUrl:
    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_cert_reqs: str | None = None


def is_cluster_url(url: str) -> bool:
    return url.strip().lower().startswith(tuple(f"{s}://" for s in CLUSTER_SCHEMES))


def parse_cluster_url(url: str) -> ClusterUrl:
    """Raises ValueError naming what is wrong (never echoing the URL: it may hold a secret)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in CLUSTER_SCHEMES:
        raise ValueError("expected a redis+cluster:// or rediss+cluster:// URL")
    username, password, hostlist = _credentials(parts.netloc)
    nodes = tuple(_host_port(entry, CLUSTER_PORT, "node") for entry in hostlist.split(","))
    path = parts.path.strip("/")
    if path not in ("", "0"):
        raise ValueError("a cluster has only database 0: expected no path or /0")
    query = _options(parts.query, _CLUSTER_QUERY)
    return ClusterUrl(
        nodes=nodes,
        username=username,
        password=password,
        ssl=parts.scheme.lower() == "rediss+cluster",
        ssl_ca_certs=query.get("ssl_ca_certs") or None,
        ssl_cert_reqs=query.get("ssl_cert_reqs") or None,
    )


def cluster_client(url: ClusterUrl, **options: Any) -> redis.RedisCluster:
    """redis-py's RedisCluster over the URL's nodes. `retry` (no retries, see above) applies
    to connection errors; MOVED and ASK are followed whatever it says."""
    tls: dict[str, Any] = {}
    if url.ssl:
        tls = {"ssl": True, "ssl_ca_certs": url.ssl_ca_certs}
        if url.ssl_cert_reqs:
            tls["ssl_cert_reqs"] = url.ssl_cert_reqs
    return _Cluster(
        startup_nodes=[ClusterNode(host, port) for host, port in url.nodes],  # type: ignore[no-untyped-call]
        username=url.username,
        password=url.password,
        **tls,
        **options,
    )


class _Cluster(redis.RedisCluster):
    """RedisCluster whose pipelines take EVALSHA and TIME. redis-py blocks pipe.evalsha in
    cluster mode (a script's keys might span slots), but routes EVALSHA by its keys when sent by
    name; every WorkStream script's keys share one slot (common/keys.py), so each call goes to
    its slot's master, in order with the other commands for that node (BLMOVE then start.lua).
    TIME, keyless, goes to any node in a non-transactional pipeline (a transaction on a cluster
    holds one slot's commands only: none with TIME)."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with _redirections_ran_out():
            return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        pipe: ClusterPipeline = super().pipeline(transaction, shard_hint)  # type: ignore[no-untyped-call]
        execute = pipe.execute

        def execute_pipe(raise_on_error: bool = True) -> Any:
            with _redirections_ran_out():
                return execute(raise_on_error)

        pipe.execute = execute_pipe  # type: ignore[method-assign]

        def evalsha(sha: str, numkeys: int, *keys_and_args: Any) -> Any:
            return pipe.execute_command("EVALSHA", sha, numkeys, *keys_and_args)  # type: ignore[no-untyped-call]

        pipe.evalsha = evalsha  # type: ignore[method-assign]
        if not transaction:  # keyless TIME goes to any node; blocked as pipe.time() too

            def time() -> Any:
                return pipe.execute_command("TIME")  # type: ignore[no-untyped-call]

            pipe.time = time  # type: ignore[method-assign,assignment]
        return pipe


@contextlib.contextmanager
def _redirections_ran_out() -> Iterator[None]:
    """redis-py's 'TTL exhausted' (MOVED/ASK/TRYAGAIN followed 16 times: a slot whose keys are
    split by a migration) as the TRYAGAIN reply it stands for: a ResponseError, so every caller
    that handles Redis refusing work for now (the API's 503) handles it. Nothing ran."""
    try:
        yield
    except redis.exceptions.ClusterError as ex:
        if isinstance(ex, redis.exceptions.ResponseError):  # CLUSTERDOWN, MASTERDOWN: as they are
            raise
        raise redis.exceptions.TryAgainError(f"TRYAGAIN {ex}") from ex


def is_cluster(client: Any) -> bool:
    return isinstance(client, redis.RedisCluster)


def node_client(client: Any, key: str) -> redis.Redis:
    """The client of the node that is master of `key`'s slot now (for commands that must
    share one connection with a keyed one, as WAIT does); `client` itself when not a cluster."""
    if not is_cluster(client):
        return cast(redis.Redis, client)
    node = client.get_node_from_key(key, replica=False)
    return cast(redis.Redis, client.get_redis_connection(node))


def refresh_slots(client: Any) -> None:
    """After a MOVED or a lost connection met outside RedisCluster's own routing (node_client):
    read the slot map again (a node that does not answer is skipped)."""
    if is_cluster(client):
        try:
            client.nodes_manager.initialize()
        except redis.exceptions.RedisError:
            pass  # no node answers now: the next call tries again


# -- DURABILITY=replicated ------------------------------------------------------------------


class NotReplicatedError(redis.exceptions.RedisError):
    """A write ran on the primary but fewer than REPLICA_ACKS replicas confirmed it within
    REPLICA_ACK_TIMEOUT: a failover now may lose it, or it may survive. The API answers 503
    not_replicated; a client resends with its idempotency key."""

    def __init__(self, acked: int, wanted: int) -> None:
        super().__init__(f"{acked} of {wanted} replicas confirmed the write in time")
        self.acked = acked
        self.wanted = wanted


class _Script(Protocol):
    @property
    def sha(self) -> str: ...
    @property
    def source(self) -> str: ...


def call_replicated(
    client: redis.Redis,
    script: _Script,
    keys: list[str],
    args: list[Any],
    replicas: int,
    timeout_ms: int,
) -> Any:
    """EVALSHA, then WAIT, pipelined (non-transactional) so both use one connection: WAIT
    counts the replicas that have this connection's last write. A reply that is not "ok" wrote
    nothing (a refusal), so it is returned whatever WAIT says. NOSCRIPT (a promoted replica or
    a restart lost the script cache) is answered before the script runs: load and resend."""
    loaded = False
    for _ in range(3):
        # On a cluster: the slot's master, so that WAIT shares the script's connection.
        node = node_client(client, keys[0])
        pipe = node.pipeline(transaction=False)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        pipe.wait(replicas, timeout_ms)
        try:
            reply, acked = pipe.execute(raise_on_error=False)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            refresh_slots(client)  # a dead master: the next call asks the cluster again
            raise
        if isinstance(reply, redis.exceptions.NoScriptError) and not loaded:
            node.script_load(script.source)
            loaded = True
            continue
        if isinstance(reply, redis.exceptions.MovedError) and is_cluster(client):
            refresh_slots(client)  # the slot moved (failover, resharding): it did not run
            continue
        if isinstance(reply, Exception):
            raise reply
        if isinstance(acked, Exception):
            raise acked
        if int(acked) < replicas and _wrote(reply):
            raise NotReplicatedError(int(acked), replicas)
        return reply
    raise redis.exceptions.TryAgainError("the slot kept moving; try again")


def confirm_replicated(client: redis.Redis, channel: str, replicas: int, timeout_ms: int) -> None:
    """WAIT for everything the primary holds now, for a call that wrote nothing (a replayed
    idempotency key: its job was written earlier, perhaps never replicated). WAIT counts only
    its connection's own writes, so one is made: PUBLISH is replicated and touches no key."""
    pipe = node_client(client, channel).pipeline(transaction=False)
    pipe.publish(channel, "")
    pipe.wait(replicas, timeout_ms)
    try:
        _, acked = pipe.execute()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        refresh_slots(client)
        raise
    if int(acked) < replicas:
        raise NotReplicatedError(int(acked), replicas)


def _wrote(reply: Any) -> bool:
    return not isinstance(reply, list) or not reply or reply[0] == "ok"


def reopen_if_dropped(client: redis.Redis) -> None:
    """Before using a dedicated client: if the server or the network closed its idle
    connection, disconnect so the next command reconnects instead of failing. redis-py does
    this check only for pooled connections; about 1 us (one non-blocking read)."""
    connection: Any = getattr(client, "connection", None)  # a RedisCluster has none
    if connection is None:
        return
    try:  # a connection never opened is opened here (public API only: no socket peeking)
        reusable = not connection.can_read(timeout=0)  # EOF, or bytes nobody asked for
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        reusable = False
    if not reusable:
        connection.disconnect()
