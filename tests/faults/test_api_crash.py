"""Promise 1 for batches: an API process SIGKILLed in the middle of `POST /jobs/batch` traffic
leaves every batch all or nothing. Each job carries its batch id in its payload; afterwards
each batch has either all its jobs or none, and every batch answered 201 has all of them."""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
import redis

from tests.faults.conftest import RedisFactory, StackFactory
from tests.faults.harness import PREFIX, Stopwatch
from tests.faults.results import record
from tests.support.stack import Api


@dataclass(frozen=True)
class CrashSize:
    name: str
    kills: int
    batch_size: int
    clients: int
    kill_every_s: float


FAST = CrashSize("fast", kills=2, batch_size=100, clients=3, kill_every_s=1.5)
FULL = CrashSize("full", kills=10, batch_size=100, clients=4, kill_every_s=2.0)


@dataclass
class BatchLog:
    sent: set[str]
    acknowledged: set[str]
    lock: threading.Lock


def jobs_per_batch(client: redis.Redis) -> Counter[str]:
    per_batch: Counter[str] = Counter()
    keys = list(client.scan_iter(match=f"{PREFIX}job:*", count=1000))
    for start in range(0, len(keys), 1000):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + 1000]:
            pipe.hget(key, "payload")
        per_batch.update(json.loads(p)["batch"] for p in pipe.execute() if p)
    return per_batch


def send_batches(current: list[Api], size: int, log: BatchLog, stop: threading.Event) -> None:
    while not stop.is_set():
        batch_id = uuid.uuid4().hex
        body = {
            "jobs": [{"type": "echo", "payload": {"batch": batch_id, "i": i}} for i in range(size)]
        }
        with log.lock:
            log.sent.add(batch_id)
        try:
            status, _, _ = current[0].request("POST", "/jobs/batch", body, timeout_s=10)
        except (OSError, http.client.HTTPException):
            time.sleep(0.05)  # the API died under us, or is restarting
            continue
        if status == 201:
            with log.lock:
                log.acknowledged.add(batch_id)
        stop.wait(0.02)  # a steady stream, not a flood that fills the queue


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "size", [FAST, pytest.param(FULL, marks=pytest.mark.chaos)], ids=lambda s: s.name
)
def test_api_killed_mid_batch_leaves_every_batch_all_or_nothing(
    size: CrashSize, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client = server.client()
    stack = make_stack(
        server.url, LOG_LEVEL="warning", API_THREADS="16", JOB_QUEUE_CAPACITY="10000000"
    )
    current = [stack.start_api()]
    log = BatchLog(set(), set(), threading.Lock())
    stop = threading.Event()
    threads = [
        threading.Thread(target=send_batches, args=(current, size.batch_size, log, stop))
        for _ in range(size.clients)
    ]
    clock = Stopwatch()
    for thread in threads:
        thread.start()
    try:
        for _ in range(size.kills):
            time.sleep(size.kill_every_s)
            current[0].signal(signal.SIGKILL)
            current[0].wait(10)
            current[0] = stack.start_api()
        time.sleep(size.kill_every_s)
    finally:
        stop.set()
        for thread in threads:
            thread.join(20)
    per_batch = jobs_per_batch(client)
    partial = {b: n for b, n in per_batch.items() if n != size.batch_size}
    missing = [b for b in log.acknowledged if per_batch[b] != size.batch_size]
    unknown = set(per_batch) - log.sent
    record(
        "API SIGKILL during POST /jobs/batch",
        size.name,
        jobs=sum(per_batch.values()),
        faults=f"{size.kills} API SIGKILLs",
        lost=len(missing) * size.batch_size,
        duplicates=None,
        wall_s=clock.elapsed,
        passed=not partial and not missing and not unknown,
        notes=(
            f"{len(log.sent)} batches of {size.batch_size} sent, {len(log.acknowledged)} "
            f"acknowledged, {len(per_batch)} stored, {len(partial)} partial"
        ),
    )

    assert len(log.acknowledged) > size.kills, "too little traffic to mean anything"
    assert not unknown
    assert not partial, f"partial batches: {list(partial.items())[:5]}"
    assert not missing, f"acknowledged batches missing jobs: {missing[:5]}"
