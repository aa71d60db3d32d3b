"""CLI argument parsing and exit codes that need no network."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from workstream.cli.__main__ import main
from workstream.cli.client import Client, error_from_response
from workstream.cli.commands import build_parser, context_from_args, job_body
from workstream.cli.dev import connect_host, redacted


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_json_flag_is_accepted_before_the_subcommand() -> None:
    args = parse("--json", "queues")
    assert context_from_args(args, {}).json is True


def test_json_flag_is_accepted_after_the_subcommand() -> None:
    args = parse("queues", "--json")
    assert context_from_args(args, {}).json is True


def test_json_is_off_by_default() -> None:
    assert context_from_args(parse("queues"), {}).json is False


def test_api_url_and_token_come_from_the_environment() -> None:
    ctx = context_from_args(parse("queues"), {"API_URL": "http://h:1", "API_TOKEN": "a,b"})
    assert ctx.api_url == "http://h:1"
    assert ctx.token == "a"


def test_flags_override_the_environment() -> None:
    args = parse("--api-url", "http://x:2", "queues", "--token", "t")
    ctx = context_from_args(args, {"API_URL": "http://h:1", "API_TOKEN": "env"})
    assert (ctx.api_url, ctx.token) == ("http://x:2", "t")


def test_api_url_defaults_to_local_port_8080() -> None:
    assert context_from_args(parse("queues"), {}).api_url == "http://127.0.0.1:8080"


def test_submit_builds_the_job_body_from_flags() -> None:
    args = parse(
        "submit", "email_send", "--payload", '{"to": "a@b"}', "--queue", "mail",
        "--delay", "1.5", "--max-attempts", "5",
    )  # fmt: skip
    assert job_body(args) == {
        "type": "email_send",
        "payload": {"to": "a@b"},
        "queue": "mail",
        "delay": 1.5,
        "max_attempts": 5,
    }
    assert args.count == 1


def test_submit_payload_defaults_to_an_empty_object() -> None:
    assert job_body(parse("submit", "echo")) == {"type": "echo", "payload": {}}


def test_submit_payload_can_be_read_from_a_file(tmp_path: Path) -> None:
    source = tmp_path / "payload.json"
    source.write_text('{"n": 1}')
    assert parse("submit", "echo", "--payload", f"@{source}").payload == {"n": 1}


def test_invalid_payload_json_exits_2_with_one_clear_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("submit", "echo", "--payload", "{not json")
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--payload: not valid JSON" in err


@pytest.mark.parametrize("count", ["0", "-3", "many"])
def test_count_must_be_a_positive_integer(count: str) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("submit", "echo", "--count", count)
    assert caught.value.code == 2


def test_status_wait_without_seconds_means_30() -> None:
    assert parse("status", "abc", "--wait").wait == 30.0
    assert parse("status", "abc", "--wait", "5").wait == 5.0
    assert parse("status", "abc").wait is None


def test_jobs_status_must_be_a_known_status() -> None:
    with pytest.raises(SystemExit) as caught:
        parse("jobs", "--status", "done")
    assert caught.value.code == 2


def test_failed_retry_requires_a_queue() -> None:
    with pytest.raises(SystemExit) as caught:
        parse("failed", "retry")
    assert caught.value.code == 2


def test_a_command_is_required() -> None:
    with pytest.raises(SystemExit) as caught:
        parse()
    assert caught.value.code == 2


def test_dev_defaults_to_two_workers() -> None:
    args = parse("dev")
    assert (args.workers, args.port) == (2, None)
    assert parse("dev", "--workers", "4", "--port", "9000").port == 9000


def test_purge_without_yes_and_without_a_terminal_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    # An unroutable URL: the command must refuse before any request is made.
    code = main(["failed", "purge", "--queue", "q"], {"API_URL": "http://127.0.0.1:1"})
    assert code == 2
    assert "--yes" in capsys.readouterr().err


def test_bad_api_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["queues"], {"API_URL": "ftp://x"}) == 2
    assert "--api-url" in capsys.readouterr().err


def test_client_rejects_non_http_urls() -> None:
    with pytest.raises(ValueError):
        Client("localhost:8080")


def test_api_error_envelope_gives_code_and_message() -> None:
    body = json.dumps({"error": {"code": "job_not_found", "message": "job x not found"}})
    error = error_from_response(404, body.encode(), {})
    assert (error.code, error.message) == ("job_not_found", "job x not found")


def test_non_json_error_gets_a_code_from_the_status() -> None:
    error = error_from_response(502, b"Bad Gateway", {"retry-after": "3"})
    assert (error.code, error.message, error.retry_after_s) == ("http_502", "Bad Gateway", 3.0)


def test_dev_redacts_passwords_in_redis_urls() -> None:
    assert redacted("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redacted("redis://127.0.0.1:6390/0") == "redis://127.0.0.1:6390/0"


def test_dev_reaches_a_wildcard_bound_api_on_loopback() -> None:
    assert connect_host("0.0.0.0") == "127.0.0.1"
    assert connect_host("::") == "::1"
    assert connect_host("10.0.0.5") == "10.0.0.5"


def test_queues_alone_lists_and_queues_delete_names_one_queue() -> None:
    listing, deleting = parse("queues"), parse("queues", "delete", "mail")
    assert listing.handler.__name__ == "cmd_queues"
    assert deleting.handler.__name__ == "cmd_queue_delete" and deleting.queue == "mail"
