"""API_PROCESSES > 1: each child of common.prefork.Supervisor binds the port itself.

Each child binds with SO_REUSEPORT, so the kernel spreads new connections evenly over the
children; one shared socket would let the process that happens to wake first take them all.
"""

from __future__ import annotations

import socket

BACKLOG = 2048


def listening_socket(host: str, port: int) -> socket.socket:
    """A child's own socket on the shared port (SO_REUSEPORT: the kernel balances)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock
