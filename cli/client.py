"""A small JSON-over-HTTP client for the WorkStream API: one keep-alive connection, an optional
bearer token, and two failure kinds the CLI maps to exit codes (ApiError 1, Unreachable 3).

Standard library only (http.client), so the CLI starts fast and adds no dependency."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Mapping
from typing import Any

DEFAULT_API_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_S = 30.0
# The API caps one long-poll at 60 s; the socket must outlive it.
MAX_SERVER_WAIT_S = 60.0
WAIT_SLACK_S = 15.0
# A request on a reused keep-alive socket can fail because the server closed it while idle;
# only then, and only for requests that are safe to repeat, is it sent once more.
_STALE_SOCKET_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
_IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE"})

Query = Mapping[str, str | int | float | None]


class ApiError(Exception):
    """The API answered with an error status (body `{"error": {"code", "message"}}`)."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str]) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers)

    @property
    def retry_after_s(self) -> float | None:
        raw = self.headers.get("retry-after")
        try:
            return max(float(raw), 0.0) if raw is not None else None
        except ValueError:
            return None


class Unreachable(Exception):
    """No HTTP answer at all: refused, unresolvable, timed out, or not speaking HTTP."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach API at {url}: {reason}")
        self.url = url
        self.reason = reason


def describe_os_error(ex: BaseException) -> str:
    if isinstance(ex, ConnectionRefusedError):
        return "connection refused"
    if isinstance(ex, TimeoutError):
        return "timed out"
    if isinstance(ex, socket.gaierror):
        return f"cannot resolve host ({ex.strerror or ex})"
    text = str(ex).strip()
    return text or type(ex).__name__


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> ApiError:
    """The API's error envelope when there is one; otherwise a code made from the status."""
    code, message = f"http_{status}", body.decode("utf-8", errors="replace").strip()[:200]
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
        error = decoded["error"]
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
    return ApiError(status, code, message or http.client.responses.get(status, "error"), headers)


class Client:
    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        token: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {base_url!r}")
        self.base_url = base_url.strip().rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        try:
            self._port = parts.port
        except ValueError as ex:
            raise ValueError(f"bad port in {base_url!r}: {ex}") from None
        self._prefix = parts.path.rstrip("/")
        self._token = token or None
        self._timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self._requests_on_conn = 0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------

    def _connection(self, timeout_s: float) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=timeout_s)
            self._requests_on_conn = 0
        elif self._conn.sock is not None:
            self._conn.sock.settimeout(timeout_s)
        self._conn.timeout = timeout_s
        return self._conn

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Query | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """Sends one request and returns the decoded JSON body (None when empty); raises
        ApiError for a status >= 400 and Unreachable when no HTTP answer came."""
        target = self._prefix + path
        if query:
            pairs = {k: str(v) for k, v in query.items() if v is not None}
            if pairs:
                target += "?" + urllib.parse.urlencode(pairs)
        headers = {"Accept": "application/json", "Connection": "keep-alive"}
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        timeout = self._timeout_s if timeout_s is None else timeout_s
        status, raw, reply_headers = self._send(method, target, data, headers, timeout)
        if status >= 400:
            raise error_from_response(status, raw, reply_headers)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(
                status, "invalid_response", "the API answered with non-JSON", reply_headers
            ) from None

    def _send(
        self, method: str, target: str, data: bytes | None, headers: dict[str, str], timeout: float
    ) -> tuple[int, bytes, dict[str, str]]:
        for attempt in (1, 2):
            conn = self._connection(timeout)
            reused = self._requests_on_conn > 0
            try:
                conn.request(method, target, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except _STALE_SOCKET_ERRORS as ex:
                self.close()
                if attempt == 1 and reused and method in _IDEMPOTENT:
                    continue
                raise Unreachable(self.base_url, describe_os_error(ex)) from None
            except (OSError, http.client.HTTPException) as ex:
                self.close()
                raise Unreachable(self.base_url, describe_os_error(ex)) from None
            self._requests_on_conn += 1
            if response.will_close:
                self.close()
            reply_headers = {k.lower(): v for k, v in response.getheaders()}
            return response.status, raw, reply_headers
        raise AssertionError("unreachable")  # pragma: no cover

    # -- endpoints -------------------------------------------------------------------------

    def health(self, timeout_s: float | None = None) -> Any:
        return self.request("GET", "/health", timeout_s=timeout_s)

    def submit(self, job: Mapping[str, Any]) -> dict[str, Any]:
        return _object(self.request("POST", "/jobs", body=dict(job)))

    def submit_batch(self, jobs: list[dict[str, Any]]) -> dict[str, Any]:
        return _object(self.request("POST", "/jobs/batch", body={"jobs": jobs}))

    def get_job(self, job_id: str, wait_s: float = 0) -> dict[str, Any]:
        query: dict[str, str | int | float | None] = {}
        timeout = None
        if wait_s > 0:
            query["wait"] = _seconds(wait_s)
            timeout = max(self._timeout_s, wait_s + WAIT_SLACK_S)
        path = "/jobs/" + _segment(job_id)
        return _object(self.request("GET", path, query=query, timeout_s=timeout))

    def list_jobs(
        self,
        *,
        status: str | None = None,
        queue: str | None = None,
        job_type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        query = {"status": status, "queue": queue, "type": job_type, "limit": limit}
        query["cursor"] = cursor
        return _object(self.request("GET", "/jobs", query=query))

    def queues(self) -> dict[str, Any]:
        return _object(self.request("GET", "/queues"))

    def queue(self, name: str) -> dict[str, Any]:
        return _object(self.request("GET", "/queues/" + _segment(name)))

    def delete_queue(self, name: str) -> None:
        self.request("DELETE", "/queues/" + _segment(name))

    def pause(self, name: str) -> dict[str, Any]:
        return _object(self.request("POST", f"/queues/{_segment(name)}/pause"))

    def resume(self, name: str) -> dict[str, Any]:
        return _object(self.request("POST", f"/queues/{_segment(name)}/resume"))

    def retry_failed(self, name: str) -> dict[str, Any]:
        return _object(self.request("POST", f"/queues/{_segment(name)}/failed/retry"))

    def purge_failed(self, name: str) -> dict[str, Any]:
        return _object(self.request("POST", f"/queues/{_segment(name)}/failed/purge"))

    def workers(self) -> dict[str, Any]:
        return _object(self.request("GET", "/workers"))


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(200, "invalid_response", "expected a JSON object from the API", {})
    return value
