"""`python -m bench.peers.run_peer PEER METRIC --redis-url URL [...]` (in bench/.venv-peers):
one measurement of one peer, printed as one JSON line."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

from bench.core import System, runner_main
from bench.peers.tasks_common import REDIS_URL_ENV

PEERS = {
    "huey": ("bench.peers.huey_app", "HueySystem"),
    "dramatiq": ("bench.peers.dramatiq_app", "DramatiqSystem"),
    "celery": ("bench.peers.celery_app", "CelerySystem"),
    "rq": ("bench.peers.rq_app", "RQSystem"),
    "arq": ("bench.peers.arq_app", "ArqSystem"),
}


def _factory(module: str, cls: str) -> Callable[[str], System]:
    def make(url: str) -> System:
        # The apps read their Redis URL at import time.
        os.environ[REDIS_URL_ENV] = url
        system_cls: type[System] = getattr(importlib.import_module(module), cls)
        return system_cls(url)

    return make


def main() -> int:
    return runner_main({name: _factory(*where) for name, where in PEERS.items()})


if __name__ == "__main__":
    sys.exit(main())
