"""The outbound-request guard: which URLs an `http` job may name and which addresses it may reach.

One rule for every request WorkStream makes on a user's behalf: parse the URL strictly, resolve
the host once, refuse any address that is not globally routable (loopback, private, link-local
with the cloud metadata address, multicast, reserved, unspecified; IPv4 forms embedded in IPv6
are unwrapped first) unless an operator opened its network in HTTP_JOB_ALLOWED_NETWORKS, and
hand the caller the checked address to connect to, so no second lookup can answer differently.
The API uses the same parser at submission, so a malformed URL never reaches a queue.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any
from urllib.parse import urlsplit

from workstream.common.errors import WorkStreamError

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
# host, port -> the addresses it resolves to, as text ("10.0.0.1", "fe80::1%eth0")
Resolver = Callable[[str, int], Sequence[str]]

MAX_URL_CHARS = 2048
MAX_HEADERS = 50
MAX_HEADER_CHARS = 8192
MAX_TIMEOUT_S = 300.0
DEFAULT_TIMEOUT_S = 30.0
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PAYLOAD_FIELDS = frozenset({"url", "method", "headers", "body", "timeout"})
# Set by the worker: a user's value would misroute the request or forge WorkStream's own.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "workstream-job-id",
        "workstream-attempt",
        "workstream-signature",
    }
)
# Labels joined by required dots: an optional dot inside a repeated group backtracks
# exponentially on a near-miss ('aaaa...!'), and the API runs this on every http submission.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_NUMERIC_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


class InvalidUrlError(WorkStreamError):
    """A URL or http payload that cannot be sent: `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class TargetForbiddenError(WorkStreamError):
    """The target resolves to an address outside what outbound requests may reach."""


@dataclass(frozen=True)
class Target:
    """A parsed http(s) URL. `literal` is set when the host is an address (any IPv4 spelling
    inet_aton accepts, decimal 2130706433 and octal 0177.0.0.1 included), so no lookup is made."""

    url: str
    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int
    raw_path: str  # path and query, as sent
    host_header: str  # what Host carries: the host as written, and its port when not default
    literal: IPAddress | None


@dataclass(frozen=True)
class HttpRequest:
    """A checked `http` job payload."""

    target: Target
    method: str
    headers: tuple[tuple[str, str], ...]
    body: Any  # None: no body; str: sent as text; anything else: sent as JSON
    timeout_s: float


def parse_url(url: Any, field: str = "url") -> Target:
    if not isinstance(url, str) or not url:
        raise InvalidUrlError(field, "expected an http or https URL")
    if len(url) > MAX_URL_CHARS:
        raise InvalidUrlError(field, f"longer than {MAX_URL_CHARS} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ord(ch) > 0x7E for ch in url):
        raise InvalidUrlError(field, "contains spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as ex:
        raise InvalidUrlError(field, f"not a URL ({ex})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidUrlError(field, "only http and https URLs are allowed")
    if "@" in parts.netloc:
        raise InvalidUrlError(field, "credentials in the URL are not allowed; send a header")
    host = (parts.hostname or "").lower()
    if not host:
        raise InvalidUrlError(field, "has no host")
    literal = _literal(host)
    if literal is None and not _HOSTNAME.fullmatch(host):
        raise InvalidUrlError(field, f"{host!r} is not a host name or address")
    if port == 0:
        raise InvalidUrlError(field, "port 0 cannot be reached")
    default_port = 443 if scheme == "https" else 80
    host_header = parts.netloc.lower()
    if port == default_port:
        host_header = host_header.rsplit(":", 1)[0]
    raw_path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(
        url=url,
        scheme=scheme,
        host=host,
        port=port or default_port,
        raw_path=raw_path,
        host_header=host_header,
        literal=literal,
    )


def parse_http_payload(payload: Any) -> HttpRequest:
    """`{"url", "method", "headers", "body", "timeout"}`; only url is required (method POST,
    timeout DEFAULT_TIMEOUT_S). Raises InvalidUrlError naming the field."""
    if not isinstance(payload, Mapping):
        raise InvalidUrlError("payload", "expected an object with at least url")
    unknown = sorted(set(payload) - PAYLOAD_FIELDS)
    if unknown:
        raise InvalidUrlError(f"payload.{unknown[0]}", "unknown field")
    target = parse_url(payload.get("url"), "payload.url")
    method = payload.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise InvalidUrlError("payload.method", f"expected one of {', '.join(sorted(METHODS))}")
    timeout = payload.get("timeout", DEFAULT_TIMEOUT_S)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_TIMEOUT_S
    ):
        raise InvalidUrlError(
            "payload.timeout", f"expected seconds, above 0 up to {MAX_TIMEOUT_S:g}"
        )
    return HttpRequest(
        target=target,
        method=method.upper(),
        headers=_headers(payload.get("headers")),
        body=payload.get("body"),
        timeout_s=float(timeout),
    )


def _headers(raw: Any) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or len(raw) > MAX_HEADERS:
        raise InvalidUrlError("payload.headers", f"expected an object of up to {MAX_HEADERS}")
    headers = []
    for name, value in raw.items():
        if not _HEADER_NAME.fullmatch(name):
            raise InvalidUrlError("payload.headers", f"{name[:64]!r} is not a header name")
        if name.lower() in RESERVED_HEADERS:
            raise InvalidUrlError("payload.headers", f"{name} is set by WorkStream")
        if not isinstance(value, str) or len(value) > MAX_HEADER_CHARS:
            raise InvalidUrlError("payload.headers", f"{name}: expected a string value")
        if any((ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in value):
            raise InvalidUrlError("payload.headers", f"{name}: control characters")
        headers.append((name, value))
    return tuple(headers)


def _literal(host: str) -> IPAddress | None:
    """The address a host spells, in any form a C resolver would read as one, else None."""
    try:
        return ip_address(host)
    except ValueError:
        pass
    return _inet_aton(host)


def _inet_aton(host: str) -> IPv4Address | None:
    """inet_aton's reading: 1-4 parts, each decimal, octal (leading 0) or hex (0x); the last
    fills the remaining bytes. '2130706433', '0177.1', '0x7f.0.0.1' are all 127.0.0.1."""
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts.pop()  # a trailing dot, as resolvers accept
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.fullmatch(p) for p in parts):
        return None
    values = [
        int(p, 16) if p[:2].lower() == "0x" else int(p, 8) if p[0] == "0" else int(p) for p in parts
    ]
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for value in head:
        number = number << 8 | value
    return IPv4Address(number << 8 * (4 - len(head)) | last)


def parse_networks(raw: str) -> tuple[IPNetwork, ...]:
    """HTTP_JOB_ALLOWED_NETWORKS: comma-separated CIDRs ('10.1.0.0/16, ::1/128')."""
    networks = []
    for part in raw.split(","):
        if not part.strip():
            continue
        try:
            networks.append(ip_network(part.strip(), strict=True))
        except ValueError as ex:
            raise ValueError(f"expected comma-separated CIDRs, {ex}") from None
    return tuple(networks)


def forbidden_reason(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why an outbound request may not reach `address`, or None when it may."""
    embedded = _embedded_ipv4(address)
    candidates = [address] if embedded is None else [address, embedded]
    allowed = tuple(allowed)
    if any(a in net for a in candidates for net in allowed if a.version == net.version):
        return None
    for candidate in reversed(candidates):  # the embedded IPv4 decides, as it is what is reached
        reason = _reason(candidate)
        if reason is not None:
            return reason if candidate is address else f"{reason} (IPv4 inside IPv6)"
    return None


def _embedded_ipv4(address: IPAddress) -> IPv4Address | None:
    if isinstance(address, IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 0xFFFF:  # deprecated ::a.b.c.d
        return IPv4Address(int(address))
    return None


_NAT64 = ip_network("64:ff9b::/96")


def _reason(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, IPv6Address) and address.is_site_local:
        return "site-local"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:  # shared address space (100.64/10) and the like
        return "not globally routable"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def check_target(
    target: Target, allowed: Iterable[IPNetwork] = (), resolver: Resolver = system_resolver
) -> IPAddress:
    """The one address to connect to: the host is resolved once here, and every address it
    resolves to must pass (a name that also points inside the network is refused whole).
    Raises TargetForbiddenError; lets the resolver's OSError through (a lookup that failed
    may work later)."""
    if target.literal is not None:
        addresses: list[IPAddress] = [target.literal]
    else:
        # A scope id (fe80::1%eth0) is dropped: link-local is refused anyway.
        addresses = [
            ip_address(text.split("%", 1)[0]) for text in resolver(target.host, target.port)
        ]
        if not addresses:
            raise OSError(f"{target.host} resolved to no address")
    allowed = tuple(allowed)
    for address in addresses:
        reason = forbidden_reason(address, allowed)
        if reason is not None:
            shown = "" if target.literal is not None else f" resolves to {address}, which"
            raise TargetForbiddenError(
                f"target_forbidden: {target.host}{shown} is {reason}; "
                "HTTP_JOB_ALLOWED_NETWORKS can open a network"
            )
    return addresses[0]
