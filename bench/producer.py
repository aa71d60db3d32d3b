"""`python -m bench.producer SYSTEM REDIS_URL`: a long-lived single-enqueue producer for
bench.paired. Each line on stdin is a job count; it enqueues that many one-INCR jobs one at a
time through SYSTEM's normal submit API and prints the rate (jobs/s) on one line.

Runs in WorkStream's venv for `workstream` and in bench/.venv-peers for the peers.
"""

from __future__ import annotations

import os
import sys
import time

from bench.core import COUNTER_KEY, System

MAX_BURST = 100_000


def make_system(name: str, redis_url: str) -> System:
    if name == "workstream":
        from bench.workstream_runner import WorkStreamSystem

        return WorkStreamSystem(redis_url)
    from bench.peers.run_peer import PEERS, _factory
    from bench.peers.tasks_common import REDIS_URL_ENV

    os.environ[REDIS_URL_ENV] = redis_url
    return _factory(*PEERS[name])(redis_url)


def main() -> int:
    name, redis_url = sys.argv[1], sys.argv[2]
    system = make_system(name, redis_url)
    print("ready", flush=True)
    for line in sys.stdin:
        count = min(int(line), MAX_BURST)
        started = time.perf_counter()
        for _ in range(count):
            system.enqueue_incr(COUNTER_KEY)
        print(count / (time.perf_counter() - started), flush=True)
    system.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
