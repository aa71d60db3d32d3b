"""Request id + access log, and bearer-token auth."""

from __future__ import annotations

import hmac
import logging
import os
import random
import re
import time
from collections.abc import Sequence
from typing import Any

import falcon

from workstream.api.errors import ApiError
from workstream.common.logs import request_id_var

log = logging.getLogger("api.access")

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Liveness must answer without credentials (probes), and the dashboard's static files hold no
# data: the page itself asks for the token before it calls the API.
PUBLIC_PATHS = frozenset({"/", "/health", "/ui"})  # "/" only redirects to /ui
PUBLIC_PREFIX = "/ui/"


class RequestContext:
    """Takes or makes a request id, echoes it, and logs one `http.request` line per request."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header("X-Request-ID")
        request_id = given if given and REQUEST_ID_PATTERN.fullmatch(given) else _new_request_id()
        req.context.request_id = request_id
        req.context.started = time.perf_counter()
        req.context.log_token = request_id_var.set(request_id)
        resp.set_header("X-Request-ID", request_id)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        if log.isEnabledFor(logging.INFO):  # the fields cost more than the check
            started = getattr(req.context, "started", None)
            duration_ms = 0.0 if started is None else (time.perf_counter() - started) * 1000
            log.info(
                "http.request",
                extra={
                    "method": req.method,
                    "path": req.path,
                    "status": int(resp.status_code),
                    "duration_ms": round(duration_ms, 2),
                    "pid": os.getpid(),  # which API process served it (API_PROCESSES > 1)
                },
            )
        token = getattr(req.context, "log_token", None)
        if token is not None:
            request_id_var.reset(token)


class BearerAuth:
    """Every endpoint but the public ones needs `Authorization: Bearer <one of the tokens>`."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = tuple(token.encode("utf-8") for token in tokens)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if is_public(req.path):
            return
        header = req.get_header("Authorization") or ""
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and self._matches(given.strip().encode("utf-8")):
            return
        raise ApiError(
            401,
            "unauthorized",
            "send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )

    def _matches(self, given: bytes) -> bool:
        # Compare against every token, without stopping early, so timing says nothing.
        found = False
        for token in self._tokens:
            found |= hmac.compare_digest(given, token)
        return found


def _new_request_id() -> str:
    # A correlation id needs to be unlikely to repeat, not unpredictable. os.urandom is a
    # syscall that lets another thread take the GIL mid-request; the Mersenne Twister is not,
    # and CPython reseeds it in every forked API process.
    return f"{random.getrandbits(64):016x}"


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIX)
