"""Promise 3 under overload: producers submit several times faster than the workers drain.
Depth never exceeds JOB_QUEUE_CAPACITY, the excess gets 429 queue_full with Retry-After, Redis
memory stays bounded, and every accepted job drains afterwards."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import redis

from tests.faults.conftest import RedisFactory, StackFactory
from tests.faults.harness import PREFIX, Stopwatch, statuses
from tests.faults.results import record
from tests.support.stack import Api, wait_until

MEMORY_HEADROOM_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class OverloadSize:
    name: str
    capacity: int
    producers: int
    run_s: float


FAST = OverloadSize("fast", capacity=300, producers=4, run_s=5)
FULL = OverloadSize("full", capacity=2_000, producers=6, run_s=40)


@dataclass
class Outcomes:
    accepted: list[str] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)
    bad_429s: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def produce(api: Api, outcomes: Outcomes, stop: threading.Event) -> None:
    while not stop.is_set():
        status, body, headers = api.request(
            "POST", "/jobs", {"type": "sleep", "payload": {"seconds": 0.02}}, timeout_s=10
        )
        with outcomes.lock:
            outcomes.answers[status] += 1
            if status == 201:
                outcomes.accepted.append(body["id"])
            elif status == 429:
                retry_after = headers.get("retry-after", "")
                if body["error"]["code"] != "queue_full" or not retry_after.isdigit():
                    outcomes.bad_429s.append(f"{body} retry-after={retry_after!r}")
        if status == 429:
            time.sleep(0.01)


def completed_total(client: redis.Redis) -> int:
    stats: dict[str, str] = client.hgetall(f"{PREFIX}stats")  # type: ignore[assignment]
    return sum(int(v) for k, v in stats.items() if k.startswith("completed|"))


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "size", [FAST, pytest.param(FULL, marks=pytest.mark.chaos)], ids=lambda s: s.name
)
def test_overload_is_refused_with_429_and_depth_and_memory_stay_bounded(
    size: OverloadSize, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client = server.client()
    env = {"JOB_QUEUE_CAPACITY": str(size.capacity), "RESULT_TTL": "5s", "LOG_LEVEL": "warning"}
    stack = make_stack(server.url, **env, SWEEPER_INTERVAL="1s")
    api = stack.start_api()
    stack.start_worker({"WORKER_COUNT": "2"})  # about 100 jobs/s: far below the offered load
    baseline = int(client.info("memory")["used_memory"])
    outcomes = Outcomes()
    stop = threading.Event()
    producers = [
        threading.Thread(target=produce, args=(api, outcomes, stop)) for _ in range(size.producers)
    ]
    depths: list[int] = []
    memory: list[int] = []
    clock = Stopwatch()
    for thread in producers:
        thread.start()
    try:
        while clock.elapsed < size.run_s:
            pipe = client.pipeline(transaction=False)
            pipe.llen(f"{PREFIX}queue:default")
            pipe.zcard(f"{PREFIX}scheduled:default")
            pipe.info("memory")
            pending, scheduled, info = pipe.execute()
            depths.append(pending + scheduled)
            memory.append(int(info["used_memory"]))
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in producers:
            thread.join(20)
    # Results expire after 5 s, so the completed counter is the witness, not the records.
    drained = wait_until(lambda: completed_total(client) == len(outcomes.accepted), 120, 0.5)
    final = statuses(client, outcomes.accepted)
    half = len(memory) // 2
    record(
        "overload (4-6x drain rate)",
        size.name,
        jobs=len(outcomes.accepted),
        faults=f"{outcomes.answers[429]} submissions refused with 429",
        lost=len(outcomes.accepted) - completed_total(client),
        duplicates=None,
        wall_s=clock.elapsed,
        passed=drained and max(depths) <= size.capacity,
        notes=(
            f"capacity {size.capacity}, peak depth {max(depths)}, peak used_memory "
            f"+{(max(memory) - baseline) / 1e6:.1f} MB, answers {dict(outcomes.answers)}"
        ),
    )

    assert outcomes.answers[429] > 0, "the producers never outran the workers"
    assert set(outcomes.answers) <= {201, 429}, outcomes.answers
    assert not outcomes.bad_429s, outcomes.bad_429s[:3]
    assert max(depths) <= size.capacity
    assert max(memory) <= baseline + MEMORY_HEADROOM_BYTES
    assert max(memory[half:]) <= max(memory[:half]) * 1.25, "memory kept growing"
    assert drained, dict(final)
    assert final["pending"] == final["processing"] == final["failed"] == 0
