"""Promise 1 across a Redis crash: Redis runs with AOF and is SIGKILLed mid-run, then restarted
from its AOF on the same port. While it is down the API answers 503 quickly (never 500, never
hanging), workers reconnect with capped backoff, and every job answered 201 completes.
With `appendfsync always` nothing acknowledged may be lost; with `everysec` the test measures
what the one-second window costs."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests.faults.conftest import RedisFactory, StackFactory
from tests.faults.harness import FAST_RECOVERY, Executions, Stopwatch, statuses
from tests.faults.results import record
from tests.support.stack import Api, wait_until

CLIENT_TIMEOUT_S = 12.0
SLOWEST_ANSWER_S = 10.0  # the API's Redis socket timeout; nothing may take longer
WORKER_BACKOFF_CAP_S = 5.0


@dataclass(frozen=True)
class CrashSize:
    name: str
    fsync: str
    crashes: int
    up_s: float
    down_s: float


FAST = CrashSize("fast", fsync="always", crashes=1, up_s=3, down_s=2)
FULL = CrashSize("full", fsync="always", crashes=4, up_s=6, down_s=3)
FULL_EVERYSEC = CrashSize("full-everysec", fsync="everysec", crashes=4, up_s=6, down_s=3)


@dataclass
class Traffic:
    acknowledged: list[str] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)
    down_answers: Counter[str] = field(default_factory=Counter)
    slowest_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    redis_down: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def submit(api: Api, traffic: Traffic, stop: threading.Event, rate_s: float) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        started = time.monotonic()
        down = traffic.redis_down.is_set()
        try:
            status, body, _ = api.request(
                "POST", "/jobs", {"type": "fault_work", "payload": {"ms": n % 20}},
                timeout_s=CLIENT_TIMEOUT_S,
            )  # fmt: skip
        except (OSError, http.client.HTTPException) as ex:
            with traffic.lock:
                traffic.failures.append(f"no answer: {ex!r}")
            continue
        took = time.monotonic() - started
        with traffic.lock:
            traffic.answers[status] += 1
            traffic.slowest_s = max(traffic.slowest_s, took)
            if status == 201:
                traffic.acknowledged.append(body["id"])
            elif status == 503:
                traffic.down_answers[body["error"]["code"]] += 1
            else:
                traffic.failures.append(f"{status} {body} (redis down: {down})")
        stop.wait(rate_s)


@pytest.mark.timeout(400)
@pytest.mark.parametrize(
    "size",
    [
        FAST,
        pytest.param(FULL, marks=pytest.mark.chaos),
        pytest.param(FULL_EVERYSEC, marks=pytest.mark.chaos),
    ],
    ids=lambda s: s.name,
)
def test_redis_crash_and_aof_restart_keep_every_acknowledged_job(
    size: CrashSize, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis("--appendonly", "yes", "--appendfsync", size.fsync)
    # JOB_TIMEOUT bounds how long a job can sit in `processing` if a rollback (everysec)
    # un-finishes work that a live worker already reported.
    stack = make_stack(server.url, **FAST_RECOVERY, JOB_TIMEOUT="5s", WORKER_COUNT="8")
    api = stack.start_api()
    workers = [stack.start_worker() for _ in range(2)]
    traffic = Traffic()
    stop = threading.Event()
    producers = [
        threading.Thread(target=submit, args=(api, traffic, stop, 0.002)) for _ in range(3)
    ]
    health_during_outage: Counter[int] = Counter()
    clock = Stopwatch()
    for thread in producers:
        thread.start()
    try:
        for _ in range(size.crashes):
            time.sleep(size.up_s)
            server.kill()
            traffic.redis_down.set()
            outage_ends = time.monotonic() + size.down_s
            while time.monotonic() < outage_ends:
                health_during_outage[api.request("GET", "/health", timeout_s=5)[0]] += 1
                time.sleep(0.2)
            server.start()
            traffic.redis_down.clear()
        time.sleep(size.up_s)
    finally:
        stop.set()
        for thread in producers:
            thread.join(30)
    client = server.client()
    acknowledged = list(traffic.acknowledged)
    drained = wait_until(
        lambda: statuses(client, acknowledged)["completed"] == len(acknowledged), 90, 0.5
    )
    final = statuses(client, acknowledged)
    lost = len(acknowledged) - final["completed"]
    backoffs = [
        float(event.get("retry_in_s", 0))
        for worker in workers
        for event in worker.log_events()
        if event.get("event") in {"redis.unavailable", "redis.retry"}
    ]
    record(
        f"Redis SIGKILL + AOF restart (appendfsync {size.fsync})",
        size.name,
        jobs=len(acknowledged),
        faults=f"{size.crashes} Redis SIGKILLs, {size.down_s:g}s down each",
        lost=lost,
        duplicates=Executions.read(client).duplicates,
        wall_s=clock.elapsed,
        passed=drained and not traffic.failures,
        notes=(
            f"final {dict(final)}; answers {dict(traffic.answers)}; slowest answer "
            f"{traffic.slowest_s:.2f}s; /health while down {dict(health_during_outage)}"
        ),
    )

    assert not traffic.failures, traffic.failures[:5]
    assert traffic.answers[503] > 0 and set(traffic.down_answers) == {"redis_unavailable"}
    assert set(health_during_outage) == {503}
    assert traffic.slowest_s < SLOWEST_ANSWER_S
    assert all(delay <= WORKER_BACKOFF_CAP_S for delay in backoffs), max(backoffs)
    assert all(worker.alive() for worker in workers)
    if size.fsync == "always":
        assert drained and lost == 0, dict(final)
