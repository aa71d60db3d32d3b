"""workstream-api: environment -> settings -> logging -> Redis -> Falcon app -> waitress."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from types import FrameType

from workstream.api.app import create_app
from workstream.api.dispatch import (
    ApiServer,
    adjustments,
    connection_limit,
    raise_open_files_limit,
)
from workstream.api.prefork import listening_socket
from workstream.common.events import configure_at_start
from workstream.common.logs import configure_logging
from workstream.common.prefork import Supervisor
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings, load_or_exit
from workstream.common.shards import open_store, shards_in_place
from workstream.worker.background import Periodic, scheduler_step

log = logging.getLogger("api")

# Redis connections beyond one per request thread: room for connections being replaced.
EXTRA_REDIS_CONNECTIONS = 8
# Below this many connections (a low open-files hard limit) the start is logged as a warning.
FEW_CONNECTIONS = 2000


class Api:
    """One API process: its Redis pool, Falcon app and waitress server."""

    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        redis_connections = settings.api_threads + EXTRA_REDIS_CONNECTIONS
        open_files = raise_open_files_limit()
        connections = connection_limit(open_files.soft, redis_connections)
        fields: dict[str, object] = {**open_files._asdict(), "connection_limit": connections}
        level = logging.INFO
        if connections < FEW_CONNECTIONS:
            level, fields["hint"] = logging.WARNING, "raise the open-files hard limit (ulimit -n)"
        log.log(level, "api.open_files", extra=fields)
        self.client = connect(settings, max_connections=redis_connections)
        self.store = open_store(self.client, settings)
        # Each shard's scripts read the cap under their own prefix: write it for every shard.
        for store in getattr(self.store, "stores", {"": self.store}).values():
            configure_at_start(self.client, store.keys, settings.events_max)
        # Set on SIGTERM/SIGINT: every long-poll answers at once.
        self.stopping = threading.Event()
        app = create_app(settings, self.store, stopping=self.stopping)
        self.server = ApiServer(app, sock, **adjustments(settings, connections))
        # The API promotes delayed jobs and fires schedules too (the scripts make a repeat a
        # no-op), so those happen with no workstream-worker running. It does not sweep: the
        # sweeper lock is held for the holder's SWEEPER_INTERVAL and judged by its WORKER_TTL,
        # which are the workers' settings to choose.
        duty_id = f"api:{socket.gethostname()}:{os.getpid()}"
        self.duties = [Periodic("scheduler", duty_id, scheduler_step(self.store))]

    def stop(self) -> None:
        """From a signal handler or another thread: long-polls end now, the loop after its
        current pass; requests in flight are answered."""
        self.stopping.set()
        for duty in self.duties:
            duty.stop.set()
        self.server.stop()

    def serve(self) -> None:
        for duty in self.duties:
            duty.thread.start()
        try:
            self.server.serve()
        finally:
            self.server.close()
            self.client.close()


def main() -> int:
    settings = load_or_exit()
    configure_logging(settings)
    if settings.api_processes == 1:
        return serve(settings)
    supervisor = Supervisor(
        settings.api_processes, lambda: serve(settings, shared=True), component="api"
    )
    return supervisor.run()


def serve(settings: Settings, *, shared: bool = False) -> int:
    """One waitress process until SIGTERM/SIGINT; `shared`: one of API_PROCESSES children,
    each with its own SO_REUSEPORT socket on the port."""
    try:
        sock = listening_socket(settings.host, settings.port, shared=shared)
    except OSError as ex:
        log.error("api.bind_failed", extra={"error": str(ex), "port": settings.port})
        return 1
    api = Api(settings, sock)
    if settings.queue_shards and not shards_in_place(api.client, settings):
        api.client.close()
        return 2

    def stop(signum: int, frame: FrameType | None) -> None:
        api.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "api.started",
        extra={
            "host": settings.host,
            "port": api.server.port,
            "threads": settings.api_threads,
            "pid": os.getpid(),
        },
    )
    api.serve()
    log.info("api.stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
