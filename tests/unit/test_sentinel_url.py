"""REDIS_URL=redis+sentinel://...: parsed once at start; a bad one stops the process with one
line that names what is wrong and never echoes the secret."""

from __future__ import annotations

from datetime import timedelta

import pytest

from workstream.common.errors import SettingsError
from workstream.common.redis_conn import SentinelUrl, parse_sentinel_url
from workstream.common.settings import Settings, load_or_exit


def test_sentinels_master_name_and_db_are_read_with_the_default_sentinel_port() -> None:
    url = parse_sentinel_url("redis+sentinel://s1:26380,s2,[::1]:26390/mymaster/3")
    assert url == SentinelUrl(
        sentinels=(("s1", 26380), ("s2", 26379), ("::1", 26390)), master_name="mymaster", db=3
    )


def test_url_credentials_go_to_the_primary_and_query_credentials_to_the_sentinels() -> None:
    url = parse_sentinel_url(
        "rediss+sentinel://app:p%40ss@s1:26379/ws?sentinel_password=sp&ssl_cert_reqs=none"
    )
    assert (url.username, url.password, url.db) == ("app", "p@ss", 0)
    assert (url.sentinel_username, url.sentinel_password) == (None, "sp")
    assert url.ssl and url.ssl_cert_reqs == "none"
    assert "p@ss" not in repr(url) and "sp" not in repr(url).replace("ssl", "")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://s1:26379", "master name"),
        ("redis+sentinel://s1:26379/", "master name"),
        ("redis+sentinel://s1:26379/ws/zero", "db a number"),
        ("redis+sentinel://s1:26379/ws/0/extra", "db a number"),
        ("redis+sentinel://s1:70000/ws", "port 1-65535"),
        ("redis+sentinel://s1:port/ws", "port 1-65535"),
        ("redis+sentinel://s1,,s2/ws", "host[:port]"),
        ("redis+sentinel://s1/ws?master=ws", "unknown option 'master'"),
        ("redis+sentinel://s1/ws?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
    ],
)
def test_a_bad_sentinel_url_is_refused_naming_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_sentinel_url(url)
    assert says in str(caught.value)


def test_a_bad_sentinel_url_stops_the_process_with_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        load_or_exit({"REDIS_URL": "redis+sentinel://:hunter2@s1:99999/ws"})
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "REDIS_URL" in err and "1-65535" in err
    assert "hunter2" not in err


def test_settings_accept_a_sentinel_url_and_an_unknown_scheme_names_the_sentinel_ones() -> None:
    url = "redis+sentinel://s1,s2/ws/0"
    assert Settings.from_environ({"REDIS_URL": url}).redis_url == url
    with pytest.raises(SettingsError, match=r"redis\+sentinel://"):
        Settings.from_environ({"REDIS_URL": "sentinel://s1/ws"})


def test_durability_defaults_to_local_and_replicated_reads_its_acks_and_timeout() -> None:
    local = Settings.from_environ({})
    assert (local.durability, local.replica_acks) == ("local", 1)
    assert local.replica_ack_timeout == timedelta(milliseconds=500)
    replicated = Settings.from_environ(
        {"DURABILITY": "Replicated", "REPLICA_ACKS": "2", "REPLICA_ACK_TIMEOUT": "2s"}
    )
    assert replicated.durability == "replicated"
    assert (replicated.replica_acks, replicated.replica_ack_timeout) == (2, timedelta(seconds=2))


def test_bad_durability_settings_are_all_named_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ(
            {"DURABILITY": "quorum", "REPLICA_ACKS": "0", "REPLICA_ACK_TIMEOUT": "0s"}
        )
    message = str(caught.value)
    assert "DURABILITY" in message and "REPLICA_ACKS" in message
    assert "REPLICA_ACK_TIMEOUT" in message
