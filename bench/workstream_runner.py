"""`python -m bench.workstream_runner SYSTEM METRIC --redis-url URL [...]` (in WorkStream's venv):
one measurement of WorkStream, printed as one JSON line.

SYSTEM is `workstream` (the Python producer API: JobStore.enqueue / enqueue_many) or
`workstream-http` (submissions through a `workstream-api` process: POST /jobs, /jobs/batch).
Workers: one `workstream-worker` command with WORKER_PROCESSES=procs, the default WORKER_COUNT
(32 for `workstream-32`), WORKER_HANDLERS=bench.handlers, NAMESPACE=bench, LOG_LEVEL=warning.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import re
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bench.core import (
    COUNTER_KEY,
    System,
    client,
    percentile,
    runner_main,
    spawn,
    stop_group,
)
from bench.redis_server import free_port

NAMESPACE = "bench"
WORKERS_KEY = f"ws:{{{NAMESPACE}}}:workers"
QUEUE_KEY = f"ws:{{{NAMESPACE}}}:queue:default"
BATCH = 1000
API_READY_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 30.0
CLIENT_TIMEOUT_S = 300.0


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


# The headline runs WorkStream at its documented defaults, as every peer runs at its own (the
# default WORKER_COUNT). The drain is measured once more with WORKER_COUNT=32 as
# `workstream-32` (more slots make bigger batches under a backlog), reported beside it.
BENCH_SLOTS = 32


def workstream_env(redis_url: str, slots: int | None = None) -> dict[str, str]:
    env = {
        "REDIS_URL": redis_url,
        "WORKER_HANDLERS": "bench.handlers",
        "NAMESPACE": NAMESPACE,
        "LOG_LEVEL": "warning",
    }
    if slots is not None:
        env["WORKER_COUNT"] = str(slots)
    return env


class WorkStreamSystem(System):
    name = "workstream"
    bulk_api = "JobStore.enqueue_many(1000 jobs) (one Lua call)"
    slots: int | None = None  # the default WORKER_COUNT

    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        from workstream.common.redis_conn import connect
        from workstream.common.settings import Settings
        from workstream.common.store import JobStore

        settings = Settings.from_environ(workstream_env(redis_url))
        # One producer thread: a connection of its own, as the README advises, rather than
        # a pool checkout per command.
        self.store = JobStore(connect(settings, dedicated=True), settings)
        self.latency_ids: list[str] = []

    def _spec(self, payload: dict[str, Any], job_type: str = "bench_incr") -> Any:
        from workstream.common.jobs import JobSpec

        return JobSpec(type=job_type, payload=payload, queue="default")

    def enqueue_incr(self, key: str) -> None:
        self.store.enqueue(self._spec({"key": key}))

    def enqueue_incr_bulk(self, key: str, n: int) -> None:
        for start in range(0, n, BATCH):
            count = min(BATCH, n - start)
            self.store.enqueue_many([self._spec({"key": key}) for _ in range(count)])

    def enqueue_latency(self, key: str, list_key: str, t0_us: int) -> None:
        spec = self._spec({"key": key, "list": list_key, "t0_us": t0_us}, "bench_latency")
        self.latency_ids.append(self.store.enqueue(spec).job_id)

    def worker_commands(self, procs: int) -> list[tuple[list[str], dict[str, str]]]:
        # One command for all processes, as the peers run (huey -w, dramatiq --processes).
        env = workstream_env(self.redis_url, self.slots) | {"WORKER_PROCESSES": str(procs)}
        return [([venv_bin("workstream-worker")], env)]

    def workers_ready(self, r: redis.Redis, procs: int) -> bool | None:
        return int(r.zcard(WORKERS_KEY)) >= procs

    def latency_extra(self, r: redis.Redis) -> dict[str, Any]:
        """The same jobs' created_at -> finished_at from their hashes (ms, Redis server time)."""
        time.sleep(0.5)  # the completion script runs just after the handler's own INCR
        pipe = r.pipeline(transaction=False)
        for job_id in self.latency_ids:
            pipe.hmget(f"ws:{{{NAMESPACE}}}:job:{job_id}", "created_at", "finished_at")
        spans = sorted(
            float(int(done) - int(created)) for created, done in pipe.execute() if created and done
        )
        if not spans:
            return {}
        return {
            "hash_p50_ms": percentile(spans, 50),
            "hash_p95_ms": percentile(spans, 95),
            "hash_p99_ms": percentile(spans, 99),
            "hash_max_ms": spans[-1],
            "hash_mean_ms": statistics.fmean(spans),
        }

    def close(self) -> None:
        self.store.redis.close()


class Api:
    """A `workstream-api` process on a free loopback port."""

    def __init__(self, redis_url: str, processes: int = 1) -> None:
        self.port = free_port()
        env = workstream_env(redis_url) | {
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "API_PROCESSES": str(processes),
        }
        self.proc = spawn([venv_bin("workstream-api")], env, log_name="workstream-api")
        deadline = time.monotonic() + API_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("workstream-api exited at start (see bench/results/logs)")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"workstream-api not healthy in {API_READY_TIMEOUT_S}s")

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT_S)

    def stop(self) -> None:
        stop_group(self.proc)


def post(conn: http.client.HTTPConnection, path: str, body: Any) -> Any:
    """One POST on a keep-alive connection; the decoded reply, or an error on a non-2xx."""
    data = json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    reply = response.read()
    if response.status not in (200, 201):
        raise RuntimeError(f"POST {path}: HTTP {response.status} {reply[:200]!r}")
    return json.loads(reply)


class WorkStreamHttpSystem(WorkStreamSystem):
    """Latency through the REST API: the producer POSTs /jobs on one keep-alive connection."""

    name = "workstream-http"
    bulk_api = "POST /jobs/batch (1000 jobs per request)"

    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url)
        self.api = Api(redis_url)
        self.conn = self.api.connection()

    def enqueue_incr(self, key: str) -> None:
        post(self.conn, "/jobs", {"type": "bench_incr", "payload": {"key": key}})

    def enqueue_incr_bulk(self, key: str, n: int) -> None:
        for start in range(0, n, BATCH):
            count = min(BATCH, n - start)
            jobs = [{"type": "bench_incr", "payload": {"key": key}} for _ in range(count)]
            post(self.conn, "/jobs/batch", {"jobs": jobs})

    def enqueue_latency(self, key: str, list_key: str, t0_us: int) -> None:
        payload = {"key": key, "list": list_key, "t0_us": t0_us}
        reply = post(self.conn, "/jobs", {"type": "bench_latency", "payload": payload})
        self.latency_ids.append(reply["id"])

    def close(self) -> None:
        self.conn.close()
        self.api.stop()
        super().close()


# -- POST /jobs with several concurrent clients -------------------------------------------------


class KeepAliveClient:
    """A minimal HTTP/1.1 load generator on one keep-alive socket, as wrk is: the request bytes
    are built once and replies are framed by Content-Length (waitress always sends it).
    http.client spends ~115 us of CPU per request parsing headers, which on 2 cores is CPU
    taken from the server being measured; this costs a fraction of that. Each reply is still
    checked: its status and the job id in its body (see post_jobs_concurrently)."""

    def __init__(self, port: int, path: str, body: Any) -> None:
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.request = head.encode() + data
        self.port = port
        self.sock = self._connect()
        self.buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=HTTP_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def send(self) -> tuple[int, bytes]:
        """One request; returns the reply's status code and body."""
        self.sock.sendall(self.request)
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = self.buffer[:end]
                match = CONTENT_LENGTH.search(head)
                if match is None:
                    raise RuntimeError(f"reply without Content-Length: {head[:200]!r}")
                total = end + 4 + int(match.group(1))
                if len(self.buffer) >= total:
                    body = self.buffer[end + 4 : total]
                    self.buffer = self.buffer[total:]
                    return int(head[9:12]), body
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk

    def reconnect(self) -> None:
        self.sock.close()
        self.buffer = b""
        self.sock = self._connect()

    def close(self) -> None:
        self.sock.close()


CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
# The id at the head of a created job's JSON (Job.to_json puts it first).
JOB_ID_FIELD = re.compile(rb'"id":"([0-9a-f]{32})"')


def _client_process(port: int, count: int, barrier: Any, results: Any) -> None:
    """One client process: its own keep-alive connection, `count` sequential POST /jobs. Sends
    back the job ids it was given, its failures, its time and its own CPU seconds."""
    client = KeepAliveClient(port, "/jobs", {"type": "bench_incr", "payload": {"key": COUNTER_KEY}})
    ids: list[bytes] = []
    errors = 0
    barrier.wait(timeout=60)
    cpu = time.process_time()
    start = time.monotonic()
    for _ in range(count):
        try:
            status, body = client.send()
        except (OSError, RuntimeError):
            errors += 1
            client.reconnect()
            continue
        found = JOB_ID_FIELD.search(body) if status == 201 else None
        if found is None:
            errors += 1
        else:
            ids.append(found.group(1))
    results.put((ids, errors, time.monotonic() - start, time.process_time() - cpu))
    client.close()


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (from /proc; 0 for one gone)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def _process_tree(pid: int) -> list[int]:
    """pid and its descendants (the API's supervisor and its children)."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as children:
            for child in children.read().split():
                pids += _process_tree(int(child))
    except OSError:
        pass
    return pids


def _local_redis_server(r: redis.Redis | None) -> list[int]:
    """[pid] of the redis-server behind `r` when it runs on this host, else [] (a Redis
    elsewhere reports a pid that may belong to some other process here)."""
    if r is None:
        return []
    pid = int(r.info("server")["process_id"])
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as comm:
            return [pid] if comm.read().startswith("redis-server") else []
    except OSError:
        return []


def post_jobs_concurrently(
    port: int, n: int, clients: int, r: redis.Redis | None = None, api_pid: int | None = None
) -> dict[str, Any]:
    """n POST /jobs to the API on `port`, split over `clients` client processes (one process
    each, so the client side is not held back by one interpreter's GIL); timed from a shared
    start barrier.

    A request counts as done only if it answered 201 with a job id, the ids are distinct, and
    (given `r`, after a FLUSHALL) that many jobs wait in the queue. CPU microseconds per job are
    reported for the clients, the API (`api_pid` and its children) and redis-server (when its
    pid is on this host): on a small machine the three share the cores, so a figure reads with
    them."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(clients + 1)
    results = ctx.Queue()
    share = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    procs = [
        ctx.Process(target=_client_process, args=(port, share[i], barrier, results))
        for i in range(clients)
    ]
    for proc in procs:
        proc.start()
    api_pids = _process_tree(api_pid) if api_pid is not None else []
    redis_pids = _local_redis_server(r)
    try:
        barrier.wait(timeout=60)
        api_cpu, redis_cpu = _cpu_s(api_pids), _cpu_s(redis_pids)
        start = time.monotonic()
        replies = [results.get(timeout=CLIENT_TIMEOUT_S) for _ in procs]
        elapsed = time.monotonic() - start
        api_cpu, redis_cpu = _cpu_s(api_pids) - api_cpu, _cpu_s(redis_pids) - redis_cpu
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
    ids = {job_id for reply in replies for job_id in reply[0]}
    ok = len(ids)
    if r is not None:
        ok = min(ok, int(r.llen(QUEUE_KEY)))
    per_job = 1e6 / max(1, ok)
    figure: dict[str, Any] = {
        "clients": clients,
        "n": n,
        "ok": ok,
        "errors": n - ok,
        "elapsed_s": elapsed,
        "jobs_per_s": ok / elapsed,
        "client_cpu_us_per_job": sum(reply[3] for reply in replies) * per_job,
    }
    if api_pids:
        figure["api_cpu_us_per_job"] = api_cpu * per_job
    if redis_pids:
        figure["redis_cpu_us_per_job"] = redis_cpu * per_job
    return figure


# API_PROCESSES for the 8-client figure beyond one process: one per core, and one per client
# connection (SO_REUSEPORT spreads connections at random, so more processes than cores keep
# both cores busy when the split is uneven).
API_PROCESS_COUNTS = (2, 8)
CPU_FIELDS = ("api_cpu_us_per_job", "redis_cpu_us_per_job", "client_cpu_us_per_job")


def _record(out: dict[str, Any], prefix: str, figure: dict[str, Any]) -> None:
    out[f"{prefix}_jobs_per_s"] = figure["jobs_per_s"]
    out[f"{prefix}_errors"] = figure["errors"]
    for field in CPU_FIELDS:
        if field in figure:
            out[f"{prefix}_{field}"] = figure[field]


def http_enqueue(args: argparse.Namespace) -> dict[str, Any]:
    """POST /jobs with 1 and with 8 concurrent keep-alive clients, and POST /jobs/batch, against
    one API process; then 8 clients again against API_PROCESSES = 2 and 8."""
    r = client(args.redis_url)
    out: dict[str, Any] = {"status": "ok"}
    try:
        api = Api(args.redis_url)
        try:
            for clients in (1, 8):
                r.flushall()
                figure = post_jobs_concurrently(api.port, args.n, clients, r, api.proc.pid)
                _record(out, f"post_jobs_{clients}_clients", figure)
            r.flushall()
            out["post_jobs_batch_jobs_per_s"] = post_batches(api, args.n)
        finally:
            api.stop()
        for processes in API_PROCESS_COUNTS:
            api = Api(args.redis_url, processes=processes)
            try:
                r.flushall()
                figure = post_jobs_concurrently(api.port, args.n, 8, r, api.proc.pid)
                _record(out, f"post_jobs_8_clients_{processes}_procs", figure)
            finally:
                api.stop()
        if any(value for key, value in out.items() if key.endswith("_errors")):
            out["status"] = "errors"
        return out
    finally:
        r.close()


def post_batches(api: Api, n: int) -> float:
    """POST /jobs/batch of BATCH jobs, one request at a time on one connection: jobs/s."""
    conn = api.connection()
    jobs = [{"type": "bench_incr", "payload": {"key": COUNTER_KEY}}] * BATCH
    batches = max(1, n // BATCH)
    start = time.monotonic()
    for _ in range(batches):
        post(conn, "/jobs/batch", {"jobs": jobs})
    elapsed = time.monotonic() - start
    conn.close()
    return batches * BATCH / elapsed


class WorkStreamManySlots(WorkStreamSystem):
    name = "workstream-32"
    slots = BENCH_SLOTS


def main() -> int:
    return runner_main(
        {
            "workstream": WorkStreamSystem,
            "workstream-32": WorkStreamManySlots,
            "workstream-http": WorkStreamHttpSystem,
        },
        extra={"http-enqueue": http_enqueue},
    )


if __name__ == "__main__":
    sys.exit(main())
