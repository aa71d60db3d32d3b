"""The outbound-request guard (common/ssrf.py): URL parsing, address spellings, refusals."""

from __future__ import annotations

import time
from ipaddress import ip_address, ip_network

import pytest

from workstream.common.errors import SettingsError
from workstream.common.settings import Settings
from workstream.common.ssrf import (
    InvalidUrlError,
    TargetForbiddenError,
    check_target,
    forbidden_reason,
    parse_http_payload,
    parse_url,
)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "example.com/path",
        "http://",
        "http:///path",
        "http://user:secret@example.com/",
        "http://exa mple.com/",
        "http://example.com:99999/",
        "http://example.com:0/",
        "http://bad_host!.com/",
        "http://[::1/",
        "",
        42,
    ],
)
def test_malformed_urls_and_other_schemes_are_refused(url: object) -> None:
    with pytest.raises(InvalidUrlError):
        parse_url(url)


def test_a_long_near_miss_host_is_refused_in_linear_time() -> None:
    """The API parses every http job's URL: a host pattern that backtracks would let one
    submission pin a CPU (this one took minutes with an optional dot in a repeated group)."""
    started = time.monotonic()
    for host in ["a" * 40 + "!", "a" * 250 + "!", ("a-" * 30 + "a.") * 4 + "!"]:
        with pytest.raises(InvalidUrlError):
            parse_url(f"http://{host}/")
    assert time.monotonic() - started < 0.5


def test_a_url_keeps_its_path_query_and_host_header() -> None:
    target = parse_url("HTTPS://Example.COM:443/a/b?x=1&y=%20")
    assert (target.scheme, target.host, target.port) == ("https", "example.com", 443)
    assert target.raw_path == "/a/b?x=1&y=%20" and target.host_header == "example.com"
    assert parse_url("http://example.com:8080").host_header == "example.com:8080"
    assert parse_url("http://[::1]:8080/").host == "::1"


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "127.1", "0177.1", "017700000001"],
)
def test_decimal_octal_and_hex_ipv4_spellings_read_as_the_address_they_name(host: str) -> None:
    assert parse_url(f"http://{host}/").literal == ip_address("127.0.0.1")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "private"),  # reserved; Python files 240/4 under private too
        ("100.64.0.1", "not globally routable"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fd00::1", "private"),
        ("fc00::1", "private"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback (IPv4 inside IPv6)"),
        ("::ffff:169.254.169.254", "link-local (IPv4 inside IPv6)"),
        ("::ffff:10.0.0.1", "private (IPv4 inside IPv6)"),
        ("2002:7f00:1::", "loopback (IPv4 inside IPv6)"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", "private (IPv4 inside IPv6)"),  # NAT64 around 10.0.0.1
    ],
)
def test_the_default_guard_refuses_every_non_public_address(address: str, reason: str) -> None:
    assert forbidden_reason(ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ip_address(address)) is None


def test_allowed_networks_open_exactly_themselves() -> None:
    allowed = [ip_network("127.0.0.1/32"), ip_network("fd00::/64")]
    assert forbidden_reason(ip_address("127.0.0.1"), allowed) is None
    assert forbidden_reason(ip_address("::ffff:127.0.0.1"), allowed) is None
    assert forbidden_reason(ip_address("fd00::5"), allowed) is None
    assert forbidden_reason(ip_address("127.0.0.2"), allowed) == "loopback"
    assert forbidden_reason(ip_address("fd00:0:0:1::5"), allowed) == "private"


def test_allowed_networks_come_from_settings_as_cidrs() -> None:
    settings = Settings.from_environ({"HTTP_JOB_ALLOWED_NETWORKS": "127.0.0.1/32, fd00::/64"})
    assert settings.http_job_allowed_networks == (
        ip_network("127.0.0.1/32"),
        ip_network("fd00::/64"),
    )
    assert Settings.from_environ({}).http_job_allowed_networks == ()
    with pytest.raises(SettingsError, match="HTTP_JOB_ALLOWED_NETWORKS"):
        Settings.from_environ({"HTTP_JOB_ALLOWED_NETWORKS": "10.0.0.0/8,nonsense"})


def test_a_name_is_resolved_once_and_its_checked_address_returned() -> None:
    calls: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return ["93.184.215.14"]

    address = check_target(parse_url("https://example.com/x"), resolver=resolver)
    assert address == ip_address("93.184.215.14") and calls == [("example.com", 443)]


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    def resolver(host: str, port: int) -> list[str]:
        return ["10.0.0.7"]

    with pytest.raises(TargetForbiddenError, match=r"^target_forbidden: .*10\.0\.0\.7.*private"):
        check_target(parse_url("http://internal.example/"), resolver=resolver)


def test_a_name_with_any_forbidden_address_is_refused_whole() -> None:
    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "169.254.169.254"]

    with pytest.raises(TargetForbiddenError, match="link-local"):
        check_target(parse_url("http://mixed.example/"), resolver=resolver)


def test_localhost_resolved_by_the_system_is_refused() -> None:
    with pytest.raises(TargetForbiddenError, match=r"^target_forbidden: localhost resolves"):
        check_target(parse_url("http://localhost:9/"))


def test_a_literal_address_is_never_looked_up() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("looked up")

    with pytest.raises(TargetForbiddenError):
        check_target(parse_url("http://0177.0.0.1/"), resolver=resolver)
    assert check_target(parse_url("http://134744072/"), resolver=resolver) == ip_address("8.8.8.8")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": "http://example.com/", "method": "TRACE"}, "payload.method"),
        ({"url": "http://example.com/", "timeout": 0}, "payload.timeout"),
        ({"url": "http://example.com/", "timeout": 301}, "payload.timeout"),
        ({"url": "http://example.com/", "headers": {"Host": "evil"}}, "payload.headers"),
        ({"url": "http://example.com/", "headers": {"X-A": 1}}, "payload.headers"),
        ({"url": "http://example.com/", "headers": {"X-A": "a\r\nB: c"}}, "payload.headers"),
        ({"url": "http://example.com/", "extra": 1}, "payload.extra"),
        ({"method": "GET"}, "payload.url"),
        ("http://example.com/", "payload"),
    ],
)
def test_an_http_payload_names_the_field_that_is_wrong(payload: object, field: str) -> None:
    with pytest.raises(InvalidUrlError) as info:
        parse_http_payload(payload)
    assert info.value.field == field


def test_an_http_payload_defaults_to_post_and_30_seconds() -> None:
    request = parse_http_payload({"url": "http://example.com/", "headers": {"X-Key": "v"}})
    assert request.method == "POST" and request.timeout_s == 30.0
    assert request.headers == (("X-Key", "v"),) and request.body is None
