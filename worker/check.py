"""`python -m workstream.worker.check`: the worker container's healthcheck.

Exit 0 when every worker process running on this host heartbeats, 1 when one is stuck or none
is registered, 2 on a bad configuration. A worker withholds its heartbeat as soon as its
fetcher stops turning (worker.worker), and a process frozen in C code cannot beat at all, so a
heartbeat older than WORKER_TTL means stuck, not busy: the same verdict the sweeper reaches
before it recovers that worker's jobs.

"This host" is the hostname the worker registered (a container's id). After a restart the
container keeps its hostname and pids start over, so an entry left by the previous process
may share a live pid: per pid only the newest registration counts."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

import redis

from workstream.common.keys import Keys
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings, load_or_exit
from workstream.common.shards import worker_shard

TIMEOUT_S = 3.0  # below a healthcheck's usual timeout, so a hung Redis reads as unhealthy


@dataclass(frozen=True)
class Registration:
    worker_id: str
    host: str
    pid: int
    started_at: int
    last_heartbeat: int  # ms, Redis server time (the workers zset's score)


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def verdict(
    registrations: Iterable[Registration],
    host: str,
    now_ms: int,
    ttl_ms: int,
    running: Callable[[int], bool] = pid_running,
) -> tuple[bool, str]:
    """(healthy, one line saying why) for the worker processes of `host`."""
    newest: dict[int, Registration] = {}
    for entry in registrations:
        if entry.host != host or not running(entry.pid):
            continue
        known = newest.get(entry.pid)
        if known is None or entry.started_at > known.started_at:
            newest[entry.pid] = entry
    if not newest:
        return False, f"no running worker on {host} has registered"
    for entry in sorted(newest.values(), key=lambda e: e.last_heartbeat):
        age_ms = now_ms - entry.last_heartbeat
        if age_ms > ttl_ms:
            return False, f"worker {entry.worker_id} (pid {entry.pid}) silent for {age_ms} ms"
    return True, f"{len(newest)} worker(s) on {host} heartbeating"


def registrations(client: redis.Redis, keys: Keys) -> list[Registration]:
    # decode_responses=True: ids are str (redis-py's stubs cannot say so).
    scored = cast("list[tuple[str, float]]", client.zrange(keys.workers, 0, -1, withscores=True))
    pipe = client.pipeline(transaction=False)
    for worker_id, _ in scored:
        pipe.hmget(keys.worker(worker_id), "host", "pid", "started_at")
    infos: list[list[str | None]] = pipe.execute()
    found = []
    for (worker_id, score), (host, pid, started_at) in zip(scored, infos, strict=True):
        if host is None or pid is None:
            continue  # its info hash expired: long dead
        found.append(Registration(worker_id, host, int(pid), int(started_at or 0), int(score)))
    return found


def check(settings: Settings, host: str | None = None) -> tuple[bool, str]:
    client = connect(settings, socket_timeout=TIMEOUT_S)  # a Sentinel URL too
    try:
        seconds, micros = client.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        found = registrations(client, Keys(settings.namespace, worker_shard(settings)))
    except redis.exceptions.RedisError as ex:
        return False, f"cannot read the heartbeats: {type(ex).__name__}: {ex}"
    finally:
        client.close()
    ttl_ms = round(settings.worker_ttl.total_seconds() * 1000)
    return verdict(found, host or socket.gethostname(), now_ms, ttl_ms)


def main() -> None:
    healthy, reason = check(load_or_exit())
    sys.stdout.write(("ok: " if healthy else "unhealthy: ") + reason + "\n")
    sys.exit(0 if healthy else 1)


if __name__ == "__main__":
    main()
