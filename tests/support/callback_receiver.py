"""A loopback HTTP receiver for completion callbacks: records every POST's JSON body with its
WorkStream headers, answers from a status script (the last one repeats) after an optional
delay, and can be started on a port chosen earlier (a receiver that was down comes back where
the callbacks are addressed)."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Delivery:
    job_id: str  # the callback job's WorkStream-Job-Id
    attempt: str
    signature: str
    raw: bytes
    record: Any  # the body, decoded
    at: float  # time.monotonic() when it arrived


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CallbackReceiver:
    def __init__(
        self,
        port: int = 0,
        statuses: tuple[int, ...] = (200,),
        delay_s: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.deliveries: list[Delivery] = []
        self.open: dict[str, int] = {}  # callback job id -> its POSTs received, not answered
        self.lock = threading.Lock()
        self.statuses = statuses
        self.delay_s = delay_s
        self.reply_headers = headers or {}
        self._stop = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    record = json.loads(body)
                except ValueError:
                    record = None
                with receiver.lock:
                    receiver.deliveries.append(
                        Delivery(
                            self.headers.get("WorkStream-Job-Id", ""),
                            self.headers.get("WorkStream-Attempt", ""),
                            self.headers.get("WorkStream-Signature", ""),
                            body,
                            record,
                            time.monotonic(),
                        )
                    )
                    count = len(receiver.deliveries)
                    sender = self.headers.get("WorkStream-Job-Id", "")
                    receiver.open[sender] = receiver.open.get(sender, 0) + 1
                try:
                    if receiver.delay_s:
                        receiver._stop.wait(receiver.delay_s)
                finally:
                    with receiver.lock:
                        receiver.open[sender] -= 1
                        if not receiver.open[sender]:
                            del receiver.open[sender]
                status = receiver.statuses[min(count, len(receiver.statuses)) - 1]
                try:
                    self.send_response(status)
                    for name, value in receiver.reply_headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender is gone (killed mid-delivery)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/done") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def open_ids(self) -> list[str]:
        """Callback job ids with a POST held open now (its sender is mid-delivery)."""
        with self.lock:
            return list(self.open)

    def records(self) -> list[Any]:
        with self.lock:
            return [delivery.record for delivery in self.deliveries]

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
