"""workstream-api: environment -> settings -> logging -> Redis -> Falcon app -> waitress."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from types import FrameType
from typing import Any

from workstream.api.app import create_app
from workstream.api.dispatch import InlineServer
from workstream.api.group_commit import GroupCommitStore
from workstream.api.prefork import listening_socket
from workstream.common.logs import configure_logging
from workstream.common.prefork import Supervisor
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings, load_or_exit

log = logging.getLogger("api")

CONNECTION_LIMIT_MIN = 2000
# Longer than the longest long-poll (60 s), so waitress never drops a waiting client.
CHANNEL_TIMEOUT_S = 120


def build_server(
    settings: Settings, sock: socket.socket | None = None
) -> tuple[InlineServer, threading.Event]:
    """`sock`: an already listening socket shared with sibling processes (API_PROCESSES).
    Returns the server and the event that ends every long-poll at once (shutdown)."""
    client = connect(settings, max_connections=settings.api_threads + 8)
    store = GroupCommitStore(client, settings)
    stopping = threading.Event()
    app = create_app(settings, store, stopping=stopping)
    where: dict[str, Any] = {} if sock else {"host": settings.host, "port": settings.port}
    server = InlineServer(
        app,
        sock,
        store.serve_together,
        **where,
        threads=settings.api_threads,
        connection_limit=max(CONNECTION_LIMIT_MIN, settings.api_threads * 8),
        channel_timeout=CHANNEL_TIMEOUT_S,
        # Bodies far past the limit are refused by waitress before they are buffered; those
        # between the limit and this get the API's own JSON 413.
        max_request_body_size=settings.max_payload_bytes * 2 + 65536,
        ident="workstream",
        clear_untrusted_proxy_headers=True,
    )
    return server, stopping


def main() -> int:
    settings = load_or_exit()
    configure_logging(settings.log_level)
    if settings.api_processes == 1:
        return serve(settings)
    supervisor = Supervisor(settings.api_processes, lambda: serve_shared(settings), component="api")
    return supervisor.run()


def serve_shared(settings: Settings) -> int:
    """One of API_PROCESSES children: its own SO_REUSEPORT socket on the port."""
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as ex:
        log.error("api.bind_failed", extra={"error": str(ex), "port": settings.port})
        return 1
    return serve(settings, sock)


def serve(settings: Settings, sock: socket.socket | None = None) -> int:
    """One waitress process until SIGTERM/SIGINT."""
    server, stopping = build_server(settings, sock)

    def stop(signum: int, frame: FrameType | None) -> None:
        # Long-polls end at once; the loop ends now, or after the submission it is serving.
        stopping.set()
        server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "api.started",
        extra={
            "host": settings.host,
            "port": server.port or settings.port,
            "threads": settings.api_threads,
            "pid": os.getpid(),
        },
    )
    try:
        server.serve()
    except SystemExit:
        pass  # a signal outside the loop
    finally:
        server.close()
    log.info("api.stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
