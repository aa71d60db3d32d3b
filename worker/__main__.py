"""`workstream-worker`: env -> settings -> logging -> Worker.run()."""

from __future__ import annotations

import sys

from common.logs import configure_logging
from common.redis_conn import connect
from common.settings import load_or_exit
from common.store import JobStore
from worker.worker import Worker


def main() -> None:
    settings = load_or_exit()
    configure_logging(settings.log_level)
    # One pool for all threads: each slot, the fetcher and each duty hold one connection.
    client = connect(settings)
    worker = Worker(settings, JobStore(client, settings))
    worker.install_signal_handlers()
    sys.exit(worker.run())


if __name__ == "__main__":
    main()
