"""`workstream-worker`: env -> settings -> logging -> Worker.run(), or WORKER_PROCESSES of them.

With WORKER_PROCESSES > 1 the parent only loads settings, configures logging and forks (see
common.prefork): each child connects to Redis and builds its own Worker, so each has its own
worker id, heartbeat and processing list, and the sweeper recovers a killed child's jobs.
"""

from __future__ import annotations

import signal
import sys

from workstream.common.errors import SettingsError
from workstream.common.events import configure_at_start
from workstream.common.logs import configure_logging
from workstream.common.prefork import Supervisor
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings, load_or_exit
from workstream.common.shards import shards_in_place, worker_shard
from workstream.common.store import JobStore
from workstream.worker.registry import HandlerImportError, load_modules
from workstream.worker.worker import Worker

# The parent's SIGKILL comes this long after SHUTDOWN_GRACE, the margin compose's
# stop_grace_period (35s) leaves over the default grace (25s): a draining child is not cut off.
STOP_MARGIN_S = 10.0


def main() -> None:
    settings = load_or_exit()
    configure_logging(settings)
    # Before any fork: a module that cannot load stops the command once, like a bad setting,
    # rather than every child failing and being restarted.
    try:
        load_modules(settings.worker_handlers)
    except HandlerImportError as ex:
        sys.stderr.write(f"workstream: {ex}\n")
        raise SystemExit(2) from None
    try:
        worker_shard(settings)  # a worker's queues share one shard
    except SettingsError as ex:
        sys.stderr.write(f"workstream: invalid configuration: {ex}\n")
        raise SystemExit(2) from None
    if settings.worker_processes == 1:
        sys.exit(serve(settings))
    supervisor = Supervisor(
        settings.worker_processes,
        lambda: serve(settings, supervised=True),
        component="worker",
        stop_timeout_s=settings.shutdown_grace.total_seconds() + STOP_MARGIN_S,
    )
    sys.exit(supervisor.run())


def serve(settings: Settings, *, supervised: bool = False) -> int:
    """One worker process until SIGTERM/SIGINT; its exit code."""
    # One pool for all threads: each slot, the fetcher and each duty hold one connection.
    client = connect(settings)
    if settings.queue_shards and not shards_in_place(client, settings, settings.queues):
        return 2
    store = JobStore(client, settings, worker_shard(settings))
    configure_at_start(client, store.keys, settings.events_max)
    worker = Worker(settings, store)
    worker.install_signal_handlers()
    if supervised:
        # Ctrl-C reaches the whole process group and the parent forwards it as SIGTERM: two
        # signals would make the worker exit at once instead of draining. The parent's is enough.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return worker.run()


if __name__ == "__main__":
    main()
