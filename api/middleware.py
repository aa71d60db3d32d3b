"""Request id + access log, and bearer-token auth."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import random
import re
import time
from collections.abc import Sequence
from typing import Any

import falcon

from workstream.api import scopes
from workstream.api.errors import ApiError
from workstream.api.scopes import Scope
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
    """Every endpoint but the public ones needs `Authorization: Bearer <token>`, and the token's
    scopes must allow the route (api.scopes.ROUTE_SCOPES): 401 without a known token, 403
    `insufficient_scope` with one that lacks the scope."""

    def __init__(self, tokens: Sequence[str], scoped: Sequence[tuple[str, str]] = ()) -> None:
        granted: dict[str, set[Scope]] = {}
        for token in tokens:  # API_TOKEN: every scope
            granted.setdefault(token, set()).update(Scope)
        for scope, token in scoped:  # API_TOKENS: scope:token, a token possibly listed again
            granted.setdefault(token, set()).add(Scope(scope))
        # Digests are compared, so the time taken says nothing about a token's length either.
        self._tokens = tuple(
            (_digest(token), frozenset(scopes)) for token, scopes in granted.items()
        )

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if is_public(req.path):
            return
        header = req.get_header("Authorization") or ""
        scheme, _, given = header.partition(" ")
        held = self._scopes(given.strip()) if scheme.lower() == "bearer" else frozenset()
        if not held:
            raise ApiError(
                401,
                "unauthorized",
                "send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        req.context.scopes = held

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        held = getattr(req.context, "scopes", None)
        if held is None or resource is None:  # a public path, or no route (404 follows)
            return
        template = req.uri_template or ""
        if scopes.allowed(template, req.method, held):
            return
        needed = scopes.needed(template, req.method)
        raise ApiError(
            403,
            "insufficient_scope",
            f"{req.method} {template} needs a token with scope {' or '.join(needed)}",
            headers={
                "WWW-Authenticate": (
                    f'Bearer error="insufficient_scope", scope="{" ".join(needed)}"'
                )
            },
        )

    def _scopes(self, given: str) -> frozenset[Scope]:
        # Compare against every token, without stopping early, so timing says nothing.
        digest = _digest(given)
        held: frozenset[Scope] = frozenset()
        for token, granted in self._tokens:
            if hmac.compare_digest(digest, token):
                held = held | granted
        return held

    def _matches(self, given: bytes) -> bool:
        return bool(self._scopes(given.decode("utf-8")))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _new_request_id() -> str:
    # A correlation id needs to be unlikely to repeat, not unpredictable. os.urandom is a
    # syscall that lets another thread take the GIL mid-request; the Mersenne Twister is not,
    # and CPython reseeds it in every forked API process.
    return f"{random.getrandbits(64):016x}"


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIX)
