"""Dependencies under worker crashes: a DAG of jobs (chains, fan-out, fan-in) is submitted
while a random worker is SIGKILLed every 2 s and restarted. Every job completes, none is left
waiting, and every job's first start comes after the last finish of each of its parents (one
counter orders the handlers' starts and finishes), with every parent's result in hand.

The same DAG spread over three shards (QUEUE_SHARDS), one worker process per shard at least:
most edges then cross shards, linked and settled by hand-offs that the workers' movers perform
(and die performing); the outbox must end empty, with the same promises kept."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass

import pytest
import redis

from tests.faults.conftest import RedisFactory, StackFactory
from tests.faults.handlers import DAG_FINISHED_KEY, DAG_NO_RESULT_KEY, DAG_STARTED_KEY
from tests.faults.harness import (
    FAST_RECOVERY,
    HANDLERS,
    PREFIX,
    Executions,
    Stopwatch,
    count_completed,
    kill_and_restart,
    statuses,
    store_for,
)
from tests.faults.results import record
from tests.support.stack import wait_until
from workstream.common.jobs import JobSpec
from workstream.common.keys import Keys
from workstream.common.outbox import Outbox
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.shards import ShardedStore, new_shard_job_id
from workstream.common.states import JobStatus


@dataclass(frozen=True)
class DagSize:
    name: str
    jobs: int
    workers: int
    storm_s: float
    drain_timeout_s: float


FAST = DagSize("fast", jobs=500, workers=2, storm_s=6, drain_timeout_s=60)
FULL = DagSize("full", jobs=2_000, workers=4, storm_s=30, drain_timeout_s=240)
KILL_EVERY_S = 2.0
BATCH = 250


def make_dag(count: int, rng: random.Random) -> dict[str, list[str]]:
    """Job id -> parents, each parent before its child: roots, chains (the job before), fan-out
    (one of a few hubs), fan-in joins (20 to 60 earlier jobs) and small random merges."""
    parents: dict[str, list[str]] = {}
    ids: list[str] = []
    hubs: list[str] = []
    for i in range(count):
        job_id = f"dag-{i}"
        shape = rng.random()
        if i < 5 or shape < 0.15:
            chosen: list[str] = []
            if len(hubs) < 5:
                hubs.append(job_id)
        elif shape < 0.45:
            chosen = [ids[-1]]  # a chain
        elif shape < 0.65:
            chosen = [rng.choice(hubs)]  # fan-out
        elif shape < 0.70:
            chosen = rng.sample(ids, min(len(ids), rng.randint(20, 60)))  # fan-in
        else:
            chosen = rng.sample(ids, min(len(ids), rng.randint(1, 3)))
        parents[job_id] = chosen
        ids.append(job_id)
    return parents


def early_starts(
    client: redis.Redis, dag: dict[str, list[str]]
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Each job's first start (the handlers' one counter), and the (job, parent) pairs where
    the job started before that parent's last finish."""
    started = {k: int(v) for k, v in client.hgetall(DAG_STARTED_KEY).items()}
    finished = {k: int(v) for k, v in client.hgetall(DAG_FINISHED_KEY).items()}
    early = [
        (job_id, parent)
        for job_id, parents in dag.items()
        for parent in parents
        if job_id in started and not finished.get(parent, 0) < started[job_id]
    ]
    return started, early


def specs_for(dag: dict[str, list[str]], rng: random.Random) -> list[JobSpec]:
    return [
        JobSpec.from_mapping(
            {
                "type": "fault_dag",
                "id": job_id,
                "payload": {"ms": rng.randint(0, 30) if rng.random() < 0.5 else 0},
                "max_attempts": 20,  # recovered runs count attempts: no job may fail here
                **({"depends_on": parents} if parents else {}),
            }
        )
        for job_id, parents in dag.items()
    ]


@pytest.mark.timeout(480)
@pytest.mark.parametrize(
    "size", [FAST, pytest.param(FULL, marks=pytest.mark.chaos)], ids=lambda s: s.name
)
def test_a_dag_under_a_sigkill_storm_runs_every_job_after_all_its_parents(
    size: DagSize, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client = server.client()
    store = store_for(server.url)
    stack = make_stack(server.url, **FAST_RECOVERY, WORKER_COUNT="8")
    workers = [stack.start_worker() for _ in range(size.workers)]
    rng = random.Random(7)
    dag = make_dag(size.jobs, rng)
    specs = specs_for(dag, rng)
    clock = Stopwatch()

    submitted = kills = 0
    next_kill = KILL_EVERY_S
    while clock.elapsed < size.storm_s or submitted < size.jobs:
        if submitted < size.jobs:  # parents first: each batch names only jobs already sent
            store.enqueue_many(specs[submitted : submitted + BATCH])
            submitted += len(specs[submitted : submitted + BATCH])
        if clock.elapsed >= next_kill and clock.elapsed < size.storm_s:
            kill_and_restart(workers, rng, lambda _: stack.start_worker())
            kills += 1
            next_kill += KILL_EVERY_S
        time.sleep(0.25)

    drained = wait_until(lambda: count_completed(client) >= size.jobs, size.drain_timeout_s, 0.5)
    final = statuses(client, list(dag))
    started, early = early_starts(client, dag)
    no_result = client.hgetall(DAG_NO_RESULT_KEY)
    executions = Executions.read(client)
    waiting = int(client.zcard(f"{PREFIX}status:waiting"))
    lost = size.jobs - final["completed"]
    edges = sum(len(p) for p in dag.values())
    record(
        "DAG (depends_on) under a worker SIGKILL storm",
        size.name,
        jobs=size.jobs,
        faults=f"{kills} SIGKILLs of {size.workers} workers; {edges} dependency edges",
        lost=lost,
        duplicates=executions.duplicates,
        wall_s=clock.elapsed,
        passed=drained and lost == 0 and not early and not no_result and waiting == 0,
        notes=f"{len(early)} jobs started before a parent finished; {waiting} left waiting",
    )

    assert kills >= int(size.storm_s / KILL_EVERY_S) - 1
    assert drained, f"not drained in {size.drain_timeout_s}s: {dict(final)}"
    assert final == {"completed": size.jobs}
    assert waiting == 0
    assert early == []
    assert no_result == {}
    assert set(started) == set(dag)


# The sharded run: blocks of consecutive jobs take turns over three queues, one per shard, so
# chains cross a shard at each block's edge and fan-outs, fan-ins and merges cross at random.
SHARD_QUEUES = {"dag": "", "dag_a": "a", "dag_b": "b"}
SHARD_BLOCK = 25


@pytest.mark.timeout(480)
@pytest.mark.parametrize(
    "size", [FAST, pytest.param(FULL, marks=pytest.mark.chaos)], ids=lambda s: s.name
)
def test_a_dag_across_shards_under_a_sigkill_storm_runs_every_job_after_all_its_parents(
    size: DagSize, make_redis: RedisFactory, make_stack: StackFactory
) -> None:
    server = make_redis()
    client = server.client()
    env = {**FAST_RECOVERY, "QUEUE_SHARDS": "dag_a:a,dag_b:b", "WORKER_COUNT": "8"}
    settings = Settings.from_environ({"REDIS_URL": server.url, "WORKER_HANDLERS": HANDLERS, **env})
    store = ShardedStore(connect(settings), settings)
    stack = make_stack(server.url, **env)
    queues = list(SHARD_QUEUES)
    workers = [
        stack.start_worker({"QUEUES": queues[i % len(queues)]})
        for i in range(max(size.workers, len(queues)))
    ]
    rng = random.Random(11)
    plain = make_dag(size.jobs, rng)
    # Ids first (a named shard's are the store's own), then the DAG over them.
    queue_of = {job_id: queues[(i // SHARD_BLOCK) % len(queues)] for i, job_id in enumerate(plain)}
    real = {
        job_id: job_id if not SHARD_QUEUES[queue] else new_shard_job_id(SHARD_QUEUES[queue])
        for job_id, queue in queue_of.items()
    }
    dag = {real[job_id]: [real[p] for p in parents] for job_id, parents in plain.items()}
    specs = [
        JobSpec.from_mapping(
            {
                "type": "fault_dag",
                "queue": queue_of[job_id],
                **({} if SHARD_QUEUES[queue_of[job_id]] else {"id": job_id}),
                "payload": {"ms": rng.randint(0, 30) if rng.random() < 0.5 else 0},
                "max_attempts": 20,
                **({"depends_on": [real[p] for p in parents]} if parents else {}),
            }
        )
        for job_id, parents in plain.items()
    ]
    order = list(plain)
    clock = Stopwatch()

    submitted = kills = 0
    next_kill = KILL_EVERY_S
    while clock.elapsed < size.storm_s or submitted < size.jobs:
        if submitted < size.jobs:  # one block (one shard) a call, parents first
            block = slice(submitted, submitted + SHARD_BLOCK)
            store.enqueue_many(specs[block], [real[job_id] for job_id in order[block]])
            submitted += len(order[block])
        if clock.elapsed >= next_kill and clock.elapsed < size.storm_s:
            kill_and_restart(
                workers, rng, lambda i: stack.start_worker({"QUEUES": queues[i % len(queues)]})
            )
            kills += 1
            next_kill += KILL_EVERY_S
        time.sleep(0.02)

    shard_keys = [Keys(settings.namespace, shard) for shard in SHARD_QUEUES.values()]

    def completed() -> int:
        return sum(int(client.zcard(keys.status(JobStatus.COMPLETED))) for keys in shard_keys)

    drained = wait_until(lambda: completed() >= size.jobs, size.drain_timeout_s, 0.5)
    final = Counter(
        "missing" if job is None else job.status.value for job in store.get_jobs(list(dag))
    )
    started, early = early_starts(client, dag)
    no_result = client.hgetall(DAG_NO_RESULT_KEY)
    executions = Executions.read(client)
    waiting = sum(int(client.zcard(keys.status(JobStatus.WAITING))) for keys in shard_keys)
    owed = Outbox(client, settings).owed()
    lost = size.jobs - final["completed"]
    edges = sum(len(p) for p in dag.values())
    crossing = sum(
        1 for job_id, parents in plain.items() for p in parents if queue_of[p] != queue_of[job_id]
    )
    record(
        "DAG (depends_on) across 3 shards under a worker SIGKILL storm",
        size.name,
        jobs=size.jobs,
        faults=f"{kills} SIGKILLs of {len(workers)} workers; {edges} edges, {crossing} crossing",
        lost=lost,
        duplicates=executions.duplicates,
        wall_s=clock.elapsed,
        passed=drained and lost == 0 and not early and not no_result and waiting == 0 and not owed,
        notes=f"{len(early)} jobs started before a parent finished; {waiting} left waiting; "
        f"{owed} hand-offs left owed",
    )

    assert kills >= int(size.storm_s / KILL_EVERY_S) - 1
    assert crossing > edges // 3
    assert drained, f"not drained in {size.drain_timeout_s}s: {dict(final)}"
    assert final == {"completed": size.jobs}
    assert waiting == 0
    assert owed == 0
    assert early == []
    assert no_result == {}
    assert set(started) == set(dag)
