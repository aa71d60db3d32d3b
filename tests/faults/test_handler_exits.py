"""Handlers that leave in ways the worker must survive, through real worker processes.

SystemExit, KeyboardInterrupt, an error message with a lone surrogate, a result nested past the
encoder's limit and a result JSON has no form for: each is the job's failure with a clear
error, never a dead slot. More of each than there are slots, so one leaked slot per job would
stop the worker, and ordinary jobs after them must still complete.

And the one case no thread can handle: a handler stuck in C code that holds the GIL (a
catastrophic regex) freezes its whole process. The test measures how long until another worker
recovers the frozen worker's jobs (WORKER_TTL=2s, SWEEPER_INTERVAL=1s).
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import RedisFactory, StackFactory
from tests.faults.harness import (
    FAST_RECOVERY,
    PREFIX,
    Executions,
    Stopwatch,
    enqueue_all,
    statuses,
    store_for,
)
from tests.faults.results import record
from tests.support.stack import wait_until
from workstream.common.jobs import JobSpec

SLOTS = 2
WAYS_OUT = {
    "system_exit": "SystemExit: 1",
    "keyboard_interrupt": "KeyboardInterrupt: ",
    "lone_surrogate": "RuntimeError: bad \\udcff",
    "deep_result": "result is not JSON-serialisable: ",
    "unencodable": "result is not JSON-serialisable: ",
}


@pytest.mark.timeout(120)
def test_handlers_leaving_through_anything_fail_their_jobs_and_the_worker_runs_on(
    make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client = server.client()
    store = store_for(server.url)
    stack = make_stack(server.url, **FAST_RECOVERY, WORKER_COUNT=str(SLOTS), MAX_ATTEMPTS="1")
    worker = stack.start_worker()
    clock = Stopwatch()
    ways = [how for how in WAYS_OUT for _ in range(SLOTS * 2 + 1)]
    exit_ids = enqueue_all(
        store, [JobSpec(type="fault_exit", payload={"how": h}, max_attempts=1) for h in ways]
    )
    work_ids = enqueue_all(store, [JobSpec(type="fault_work", payload={})] * 20)

    def settled() -> bool:
        return statuses(client, exit_ids + work_ids)["processing"] == 0 and (
            statuses(client, work_ids)["completed"] == len(work_ids)
        )

    done = wait_until(settled, 60, 0.1)
    errors = [client.hget(f"{PREFIX}job:{job_id}", "error") or "" for job_id in exit_ids]
    unclear = [
        (how, error) for how, error in zip(ways, errors, strict=True)
        if not error.startswith(WAYS_OUT[how])
    ]  # fmt: skip
    record(
        "handler exits (SystemExit, KeyboardInterrupt, bad text, bad results)",
        "fast",
        jobs=len(exit_ids) + len(work_ids),
        faults=f"{len(exit_ids)} handlers leaving 5 ways on {SLOTS} slots",
        lost=len(work_ids) - statuses(client, work_ids)["completed"],
        duplicates=Executions.read(client).duplicates,
        wall_s=clock.elapsed,
        passed=done and not unclear and worker.alive(),
    )
    assert done, f"not settled: {statuses(client, exit_ids + work_ids)}"
    assert statuses(client, exit_ids) == {"failed": len(exit_ids)}
    assert not unclear, unclear[:5]
    assert worker.alive()
    assert Executions.read(client).duplicates == 0


@pytest.mark.timeout(120)
def test_a_handler_holding_the_gil_freezes_its_worker_until_another_recovers_the_job(
    make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client = server.client()
    store = store_for(server.url)
    stack = make_stack(server.url, **FAST_RECOVERY, WORKER_COUNT="4")
    # One attempt, and alone in its worker so the recovery blames it: dead-lettered rather
    # than retried (a retry would freeze the next worker that takes it, alone, the same way).
    (regex,) = enqueue_all(store, [JobSpec(type="fault_gil_regex", payload={}, max_attempts=1)])
    frozen = stack.start_worker()
    assert wait_until(lambda: statuses(client, [regex])["processing"] == 1, 20, 0.01)
    clock = Stopwatch()  # the worker freezes as the regex starts
    try:
        stack.start_worker()
        fresh = enqueue_all(store, [JobSpec(type="fault_work", payload={})] * 5)
        assert wait_until(lambda: statuses(client, fresh)["completed"] == 5, 20, 0.05)
        assert wait_until(lambda: statuses(client, [regex])["failed"] == 1, 30, 0.05)
        recovered_s = clock.elapsed
        assert frozen.alive()  # still frozen: no heartbeat, no timeout; only SIGKILL ends it
    finally:
        frozen.signal(9)
        frozen.wait(10)
    error = client.hget(f"{PREFIX}job:{regex}", "error")
    record(
        "handler holding the GIL (catastrophic regex)",
        "fast",
        jobs=1 + len(fresh),
        faults="one worker frozen in C code; WORKER_TTL=2s, SWEEPER_INTERVAL=1s",
        lost=0,
        duplicates=Executions.read(client).duplicates,
        wall_s=recovered_s,
        notes=f"the frozen worker's job recovered {recovered_s:.1f}s after the freeze",
    )
    print(f"gil-freeze: recovered {recovered_s:.2f}s after the freeze ({error})")  # noqa: T201
    assert recovered_s < 2 + 1 + 3  # WORKER_TTL + one sweep + margin for a loaded machine
