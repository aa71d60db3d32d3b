from datetime import timedelta

import pytest

from workstream.common.durations import format_duration, parse_duration
from workstream.common.errors import SettingsError
from workstream.common.settings import SETTING_DOCS, Settings, load_or_exit


def test_defaults_match_the_documented_table() -> None:
    settings = Settings.from_environ({})
    assert settings.port == 8080
    assert settings.host == "127.0.0.1"
    assert settings.worker_count == 10
    assert settings.worker_processes == 1
    assert settings.queues == ("default",)
    assert settings.job_queue_capacity == 100_000
    assert settings.max_attempts == 3
    assert settings.retry_backoff == timedelta(seconds=1)
    assert settings.retry_backoff_max == timedelta(minutes=10)
    assert settings.job_timeout == timedelta(seconds=300)
    assert settings.shutdown_grace == timedelta(seconds=25)
    assert settings.namespace == "default"
    assert settings.worker_ttl == timedelta(seconds=30)
    assert settings.sweeper_interval == timedelta(seconds=10)
    assert settings.result_ttl == timedelta(hours=24)
    assert settings.max_payload_bytes == 1024 * 1024
    assert settings.worker_handlers == ()
    assert settings.api_tokens == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("10s", timedelta(seconds=10)),
        ("2m", timedelta(minutes=2)),
        ("1h", timedelta(hours=1)),
        ("1.5s", timedelta(seconds=1.5)),
        ("7", timedelta(seconds=7)),
    ],
)
def test_durations_accept_ms_s_m_h_and_bare_seconds(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "ten", "10x", "-1s", "1 hour"])
def test_malformed_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_documented_duration_defaults_round_trip() -> None:
    assert format_duration(timedelta(minutes=10)) == "10m"
    assert format_duration(timedelta(milliseconds=500)) == "500ms"


def test_every_invalid_variable_is_named_in_one_error() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ({"WORKER_COUNT": "ten", "PORT": "99999", "SWEEPER_INTERVAL": "soon"})
    message = str(caught.value)
    assert "WORKER_COUNT" in message
    assert "PORT" in message
    assert "SWEEPER_INTERVAL" in message


def test_invalid_configuration_exits_2_with_a_one_line_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        load_or_exit({"QUEUES": "bad queue!"})
    assert caught.value.code == 2
    text = capsys.readouterr().err
    assert "QUEUES" in text
    assert text.count("\n") == 1


def test_queues_keep_priority_order() -> None:
    settings = Settings.from_environ({"QUEUES": "critical, default,low"})
    assert settings.queues == ("critical", "default", "low")


def test_a_queue_listed_twice_is_rejected() -> None:
    with pytest.raises(SettingsError, match="QUEUES"):
        Settings.from_environ({"QUEUES": "a,a"})


def test_backoff_cap_below_base_is_rejected() -> None:
    with pytest.raises(SettingsError, match="RETRY_BACKOFF_MAX"):
        Settings.from_environ({"RETRY_BACKOFF": "10s", "RETRY_BACKOFF_MAX": "1s"})


def test_api_tokens_are_comma_separated_and_hidden_from_repr() -> None:
    settings = Settings.from_environ({"API_TOKEN": "one, two", "REDIS_URL": "redis://:pw@h:1/0"})
    assert settings.api_tokens == ("one", "two")
    assert "one" not in repr(settings)
    assert "pw" not in repr(settings)


def test_every_documented_setting_has_a_default_that_parses() -> None:
    environ = {doc.name: doc.default for doc in SETTING_DOCS}
    assert Settings.from_environ(environ) == Settings.from_environ({})
