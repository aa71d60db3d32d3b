"""REDIS_URL=redis+cluster://...: parsed once at start; a bad one stops the process with one
line that names what is wrong and never echoes the secret."""

from __future__ import annotations

import pytest

from workstream.common.errors import SettingsError
from workstream.common.redis_conn import ClusterUrl, is_cluster_url, parse_cluster_url
from workstream.common.settings import Settings


def test_nodes_are_read_with_the_default_port() -> None:
    url = parse_cluster_url("redis+cluster://n1:7000,n2,[::1]:7002/0")
    assert url == ClusterUrl(nodes=(("n1", 7000), ("n2", 6379), ("::1", 7002)))


def test_credentials_and_tls_are_read_as_for_a_plain_url() -> None:
    url = parse_cluster_url("rediss+cluster://app:p%40ss@n1:7000?ssl_cert_reqs=none")
    assert (url.username, url.password, url.ssl, url.ssl_cert_reqs) == (
        "app", "p@ss", True, "none",
    )  # fmt: skip
    assert "p@ss" not in repr(url)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://n1:7000/1", "only database 0"),
        ("redis+cluster://n1:70000", "port 1-65535"),
        ("redis+cluster://:7000", "as host"),
        ("redis+cluster://n1:7000?nope=1", "unknown option"),
        ("redis+cluster://n1?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
    ],
)
def test_a_malformed_cluster_url_is_refused_naming_the_fault(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_cluster_url(url)


def test_settings_accept_a_cluster_url_and_refuse_a_bad_one_without_echoing_it() -> None:
    good = "redis+cluster://u:secret@n1:7000,n2:7001"
    assert Settings.from_environ({"REDIS_URL": good}).redis_url == good
    assert is_cluster_url(good) and not is_cluster_url("redis://n1:7000")
    with pytest.raises(SettingsError) as refused:
        Settings.from_environ({"REDIS_URL": "redis+cluster://u:secret@n1:99999"})
    assert "secret" not in str(refused.value)
