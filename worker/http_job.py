"""The built-in `http` job type: one HTTP request per attempt, through the outbound guard.

httpx (already the client's dependency) makes the request: it is well kept, streams a body so
that a large response is cut without being read whole, and its public API lets us pin the
connection. The URL handed to httpx carries the address the guard checked, the Host header
the name, and the `sni_hostname` request extension the name for TLS (certificates are still
checked against the name), so nothing resolves the host a second time. Redirects are never
followed by httpx: each hop is checked by the guard like the first, at most MAX_REDIRECTS.

A 2xx completes the job with {"status", "headers", "body", "truncated"}; a network error, a
timeout, 408, 429 or 5xx fails the attempt (retried with the job's backoff); any other status
fails for good, and so does a target the guard refuses ("target_forbidden: ..."). A 429 or 503
with a Retry-After (seconds or an HTTP date) is waited out within the attempt when short; a
longer one fails the attempt with that delay for the next (RetryLater, at most RETRY_AFTER_MAX)
instead of the backoff.

A completion callback (_callbacks.lua) is an `http` job whose payload also carries `record`,
the finished job's hash as it was at the transition: its body is that record rendered as
GET /jobs/{id} renders it (common.jobs.Job), so a record that expired meanwhile is still sent.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import hmac
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx

from workstream.common.jobs import Job
from workstream.common.serialization import dumps
from workstream.common.settings import Settings
from workstream.common.ssrf import (
    HttpRequest,
    InvalidUrlError,
    IPAddress,
    IPNetwork,
    Resolver,
    Target,
    TargetForbiddenError,
    check_target,
    parse_http_payload,
    parse_url,
    system_resolver,
)
from workstream.worker.registry import JobContext, PermanentError, RetryLater, handler

MAX_REDIRECTS = 5
# A 429/503 asking to wait at most this long is waited out within the attempt (once), when the
# job's timeout leaves room; a longer wait fails the attempt with that wait as the delay of the
# next (HttpRetryAfter, a RetryLater: the store caps it at RETRY_AFTER_MAX).
RETRY_AFTER_WAIT_MAX_S = 10.0
WAIT_STEP_S = 0.1
ERROR_BODY_CHARS = 200
SIGNATURE_HEADER = "WorkStream-Signature"
_CROSS_ORIGIN_DROPPED = frozenset({"authorization", "cookie", "proxy-authorization"})


class HttpStatusError(Exception):
    """A status worth retrying (408, 429, 5xx): the attempt fails, the job's backoff applies."""


class HttpRetryAfter(HttpStatusError, RetryLater):
    """A 429/503 with a readable Retry-After: the next attempt waits that long, not the backoff."""


class HttpNetworkError(Exception):
    """No answer: the name did not resolve, the connection failed or the request timed out."""


class TargetForbidden(PermanentError):
    """The guard refused the target (or a redirect's): the job fails at once, uncontacted."""

    code = "target_forbidden"  # the stored error starts with it (see execution.finish)


class HttpRejected(PermanentError):
    """A status no retry will change (4xx but 408 and 429, an unfollowable 3xx)."""


@dataclass(frozen=True)
class HttpJobConfig:
    allowed_networks: tuple[IPNetwork, ...] = ()
    webhook_secret: str = field(default="", repr=False)
    max_response_bytes: int = 65536
    resolver: Resolver = system_resolver
    tls_verify: ssl.SSLContext | bool = True  # tests trust their own CA; operators keep True

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpJobConfig:
        return cls(
            allowed_networks=settings.http_job_allowed_networks,
            webhook_secret=settings.webhook_secret,
            max_response_bytes=settings.http_job_max_response_bytes,
        )


@functools.cache
def _config() -> HttpJobConfig:
    # Handlers get no settings object: read the worker's environment once, at the first job
    # (the worker validated the same variables at start-up).
    return HttpJobConfig.from_settings(Settings.from_environ())


@handler("http")
def http(payload: Any, ctx: JobContext) -> dict[str, Any]:
    return deliver(payload, ctx, _config())


def _tls(verify: ssl.SSLContext | bool) -> ssl.SSLContext | bool:
    """verify=True as one shared context: httpx builds a new one per client otherwise, loading
    the CA bundle each time (measured 255 ms per job on a busy 2-core host, 0.4 ms shared). An
    SSLContext may serve connections on any number of threads."""
    return _default_tls() if verify is True else verify


@functools.cache
def _default_tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The WorkStream-Signature value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`.
    A receiver recomputes v1 with the shared secret and rejects an old t (replays)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def deliver(payload: Any, ctx: JobContext, config: HttpJobConfig) -> dict[str, Any]:
    payload = _with_record_body(payload)
    try:
        request = parse_http_payload(payload)
    except InvalidUrlError as ex:  # the API checks this; a job enqueued otherwise may not be
        raise PermanentError(str(ex)) from None
    timeout_s = min(request.timeout_s, ctx.timeout_s) if ctx.timeout_s > 0 else request.timeout_s
    body, headers = _encode(request, ctx)
    # trust_env=False: a proxy from the environment would resolve the name itself, unchecked.
    # One client per job: a pooled TLS connection must not carry another name's request.
    client = httpx.Client(
        trust_env=False, follow_redirects=False, timeout=timeout_s, verify=_tls(config.tls_verify)
    )
    with client:
        target, method = request.target, request.method
        waited = False
        hops = 0
        for _ in range(MAX_REDIRECTS + 2):  # each hop once, and one resend after a Retry-After
            address = _check(target, config)
            result = _send(client, target, address, method, headers, body, config)
            if isinstance(result, _Redirect):
                hops += 1
                if hops > MAX_REDIRECTS:
                    raise HttpRejected(f"too_many_redirects: more than {MAX_REDIRECTS}")
                target, method, body, headers = _follow(target, result, method, body, headers)
                continue
            if result["status"] in (429, 503) and not waited:
                wait_s = _retry_after(result["headers"].get("retry-after"))
                if wait_s is not None and wait_s <= min(RETRY_AFTER_WAIT_MAX_S, timeout_s):
                    _wait(wait_s, ctx)
                    waited = True
                    continue
            return _outcome(result)
    raise HttpRejected(f"too_many_redirects: more than {MAX_REDIRECTS}")


def _with_record_body(payload: Any) -> Any:
    """A callback's payload ({"url", ..., "record": the job's hash}) with the rendered record
    as its body; any other payload as it is."""
    if not isinstance(payload, dict) or "record" not in payload:
        return payload
    rest = {name: value for name, value in payload.items() if name != "record"}
    record = payload["record"]
    try:
        if not isinstance(record, dict) or not all(isinstance(v, str) for v in record.values()):
            raise TypeError("expected the job hash's fields as text")
        rest["body"] = Job.from_hash(record).to_json()
    except (KeyError, TypeError, ValueError) as ex:  # not a record the scripts wrote
        raise PermanentError(f"invalid_callback: record: {type(ex).__name__}: {ex}") from None
    return rest


@dataclass(frozen=True)
class _Redirect:
    status: int
    location: str


def _encode(request: HttpRequest, ctx: JobContext) -> tuple[bytes | None, list[tuple[str, str]]]:
    headers = list(request.headers)
    names = {name.lower() for name, _ in headers}
    body: bytes | None = None
    if request.body is not None:
        if isinstance(request.body, str):
            body, media = request.body.encode(), "text/plain; charset=utf-8"
        else:
            body, media = dumps(request.body).encode(), "application/json"
        if "content-type" not in names:
            headers.append(("Content-Type", media))
    if "accept-encoding" not in names:
        headers.append(("Accept-Encoding", "identity"))  # a compressed body is cut unread
    headers += [("WorkStream-Job-Id", ctx.job_id), ("WorkStream-Attempt", str(ctx.attempt))]
    return body, headers


def _check(target: Target, config: HttpJobConfig) -> IPAddress:
    try:
        return check_target(target, config.allowed_networks, config.resolver)
    except TargetForbiddenError as ex:
        raise TargetForbidden(str(ex)) from None
    except (OSError, UnicodeError) as ex:  # gaierror is an OSError: DNS may answer later
        raise HttpNetworkError(f"network_error: cannot resolve {target.host}: {ex}") from None


def _send(
    client: httpx.Client,
    target: Target,
    address: IPAddress,
    method: str,
    headers: list[tuple[str, str]],
    body: bytes | None,
    config: HttpJobConfig,
) -> dict[str, Any] | _Redirect:
    url = httpx.URL(
        scheme=target.scheme, host=str(address), port=target.port, raw_path=target.raw_path.encode()
    )
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    if config.webhook_secret:  # signed per request: a 303 drops the body, a resend is later
        signature = sign(config.webhook_secret, int(time.time()), body or b"")
        headers = [*headers, (SIGNATURE_HEADER, signature)]
    request = client.build_request(
        method,
        url,
        headers=[("Host", target.host_header), *headers],
        content=body,
        extensions=extensions,
    )
    started = time.monotonic()
    try:
        response = client.send(request, stream=True)
        try:
            location = response.headers.get("location")
            if 300 <= response.status_code < 400 and location:
                return _Redirect(response.status_code, location)
            deadline = started + float(client.timeout.read or 0)
            data, truncated = _read(response, config.max_response_bytes, deadline)
        finally:
            response.close()
    except httpx.TimeoutException as ex:
        raise HttpNetworkError(f"timeout: {target.url}: {type(ex).__name__}") from None
    except httpx.RequestError as ex:  # transport errors, and a body that cannot be decoded
        raise HttpNetworkError(f"network_error: {target.url}: {type(ex).__name__}: {ex}") from None
    return {
        "status": response.status_code,
        "headers": _header_map(response.headers.multi_items()),
        "body": data.decode(response.encoding or "utf-8", "replace"),
        "truncated": truncated,
    }


def _read(response: httpx.Response, limit: int, deadline: float) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body; the rest is never read. The timeout bounds the whole
    exchange: httpx's bounds each read, which a body sent a byte at a time would outlast."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the body took longer than the timeout")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def _header_map(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _follow(
    target: Target,
    redirect: _Redirect,
    method: str,
    body: bytes | None,
    headers: list[tuple[str, str]],
) -> tuple[Target, str, bytes | None, list[tuple[str, str]]]:
    """The next hop, as browsers and httpx take it: 303 (and 301/302 after a POST) become a
    GET without a body; credentials are not carried to another origin."""
    try:
        nxt = parse_url(urljoin(target.url, redirect.location), "location")
    except InvalidUrlError as ex:
        raise HttpRejected(f"redirect_refused: {redirect.status} to {ex.message}") from None
    if redirect.status == 303 or (redirect.status in (301, 302) and method == "POST"):
        method, body = ("HEAD" if method == "HEAD" else "GET"), None
        headers = [(n, v) for n, v in headers if n.lower() != "content-type"]
    if (nxt.scheme, nxt.host, nxt.port) != (target.scheme, target.host, target.port):
        headers = [(n, v) for n, v in headers if n.lower() not in _CROSS_ORIGIN_DROPPED]
    return nxt, method, body, headers


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After (delta seconds or an HTTP date), None if unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _wait(seconds: float, ctx: JobContext) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ctx.heartbeat()  # a cancel requested meanwhile ends the job here
        time.sleep(min(left, WAIT_STEP_S))


def _outcome(result: dict[str, Any]) -> dict[str, Any]:
    status = result["status"]
    if 200 <= status < 300:
        return result
    snippet = result["body"][:ERROR_BODY_CHARS]
    if status in (408, 429) or status >= 500:
        after = result["headers"].get("retry-after")
        wait_s = _retry_after(after) if status in (429, 503) else None
        if after is not None and wait_s is not None:
            raise HttpRetryAfter(
                f"http_status {status} (Retry-After {after[:40]}: the next attempt waits "
                f"{wait_s:g}s): {snippet}",
                wait_s,
            )
        hint = ""
        if after is not None:
            hint = f" (Retry-After {after[:40]}; the job's backoff decides the next attempt)"
        raise HttpStatusError(f"http_status {status}{hint}: {snippet}")
    raise HttpRejected(f"http_status {status}: {snippet}")
