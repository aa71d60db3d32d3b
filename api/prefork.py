"""The API's listening socket; with API_PROCESSES > 1 each child of common.prefork.Supervisor
binds its own.

Children bind with SO_REUSEPORT, so the kernel spreads new connections evenly over them; one
shared socket would let the process that happens to wake first take them all. A single process
binds without it, so a second API started on the same port by mistake fails at once.
"""

from __future__ import annotations

import socket

BACKLOG = 2048


def listening_socket(host: str, port: int, *, shared: bool = False) -> socket.socket:
    """A listening socket on (host, port); `shared`: one of several processes on that port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock
