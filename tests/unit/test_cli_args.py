"""CLI argument parsing and exit codes that need no network."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from workstream.cli.__main__ import main
from workstream.cli.commands import build_parser, context_from_args, job_request
from workstream.cli.dev import connect_host, redacted
from workstream.client import Client, JobRequest
from workstream.client.calls import error_from
from workstream.client.errors import NotFound, ServerError


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


def test_submit_builds_the_job_request_from_flags() -> None:
    args = parse(
        "submit", "email_send", "--payload", '{"to": "a@b"}', "--queue", "mail",
        "--delay", "1.5", "--max-attempts", "5", "--timeout", "30", "--idempotency-key", "k-1",
    )  # fmt: skip
    assert job_request(args) == JobRequest(
        type="email_send",
        payload={"to": "a@b"},
        queue="mail",
        max_attempts=5,
        timeout=30.0,
        delay=1.5,
        idempotency_key="k-1",
    )
    assert args.count == 1


def test_submit_payload_defaults_to_an_empty_object() -> None:
    assert job_request(parse("submit", "echo")) == JobRequest("echo", {})


def test_submit_run_at_keeps_a_time_with_its_zone() -> None:
    assert parse("submit", "echo", "--run-at", "2026-12-03T15:00:00Z").run_at == (
        "2026-12-03T15:00:00Z"
    )
    assert parse("submit", "echo", "--run-at", "2026-12-03T15:00:00+01:00").run_at


def test_submit_run_at_without_a_zone_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("submit", "echo", "--run-at", "2026-12-03T15:00:00")
    assert caught.value.code == 2
    assert "give the zone" in capsys.readouterr().err


def test_submit_delay_and_run_at_exclude_each_other() -> None:
    with pytest.raises(SystemExit) as caught:
        parse("submit", "echo", "--delay", "5", "--run-at", "2026-12-03T15:00:00Z")
    assert caught.value.code == 2


def test_submit_idempotency_key_cannot_go_with_count(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["submit", "echo", "--count", "2", "--idempotency-key", "k"],
        {"API_URL": "http://127.0.0.1:1"},
    )
    assert code == 2
    assert "--idempotency-key" in capsys.readouterr().err


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("--version")
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith("workstream 0.")


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("status", "--help")
    out = capsys.readouterr().out
    for line in ("4    with --wait: the job failed", "6    with --wait: the job was still"):
        assert line in out


def test_show_is_status_by_another_name() -> None:
    assert parse("show", "abc").handler.__name__ == "cmd_status"


def test_top_runs_until_interrupted_unless_given_iterations() -> None:
    assert parse("top").iterations is None
    assert (parse("top", "--iterations", "3", "--interval", "0.5").iterations) == 3


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


@pytest.mark.parametrize(
    "argv",
    [["failed", "purge", "--queue", "q"], ["delete", "f" * 32], ["queues", "delete", "q"]],
)
def test_destructive_command_without_yes_and_without_a_terminal_exits_2(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    # An unroutable URL: the command must refuse before any request is made.
    code = main(argv, {"API_URL": "http://127.0.0.1:1"})
    assert code == 2
    assert "stdin is not a terminal, add --yes" in capsys.readouterr().err


def test_bad_api_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["queues"], {"API_URL": "ftp://x"}) == 2
    assert "--api-url" in capsys.readouterr().err


def test_client_rejects_non_http_urls() -> None:
    with pytest.raises(ValueError):
        Client("localhost:8080")


def test_api_error_envelope_gives_class_code_and_message() -> None:
    body = {"error": {"code": "job_not_found", "message": "job x not found"}}
    error = error_from(404, body, "", {})
    assert isinstance(error, NotFound)
    assert (error.code, error.message) == ("job_not_found", "job x not found")


def test_non_json_error_gets_a_code_from_the_status() -> None:
    error = error_from(502, None, "Bad Gateway", {"Retry-After": "3"})
    assert isinstance(error, ServerError)
    assert (error.code, error.message, error.retry_after) == ("http_502", "Bad Gateway", 3.0)


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


def test_submit_unique_flags_build_the_unique_option() -> None:
    args = parse(
        "submit", "report", "--unique", "report-2026-12-03", "--unique-ttl", "10m",
        "--unique-until", "started",
    )  # fmt: skip
    assert job_request(args).unique == {
        "key": "report-2026-12-03",
        "ttl": "10m",
        "until": "started",
    }


def test_submit_unique_payload_asks_for_a_key_derived_from_the_job() -> None:
    assert job_request(parse("submit", "echo", "--unique-payload")).unique == {}


def test_submit_without_unique_flags_sends_no_unique_option() -> None:
    assert "unique" not in job_request(parse("submit", "echo")).to_json()


def test_submit_unique_ttl_without_a_unique_key_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["submit", "echo", "--unique-ttl", "5m"], {"API_URL": "http://127.0.0.1:1"})
    assert code == 2
    assert "--unique-ttl and --unique-until go with --unique" in capsys.readouterr().err


def test_submit_unique_cannot_go_with_count(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["submit", "echo", "--count", "3", "--unique", "k"], {"API_URL": "http://127.0.0.1:1"}
    )
    assert code == 2
    assert "--count" in capsys.readouterr().err


def test_submit_unique_key_and_unique_payload_exclude_each_other() -> None:
    with pytest.raises(SystemExit) as caught:
        parse("submit", "echo", "--unique", "k", "--unique-payload")
    assert caught.value.code == 2


def test_submit_unique_until_accepts_exactly_the_api_values() -> None:
    from workstream.cli.commands import UNIQUE_UNTIL
    from workstream.common.jobs import UNIQUE_UNTIL as API_UNIQUE_UNTIL

    assert sorted(UNIQUE_UNTIL) == sorted(API_UNIQUE_UNTIL)
    with pytest.raises(SystemExit):
        parse("submit", "echo", "--unique", "k", "--unique-until", "forever")


def test_submit_expires_in_is_passed_on_as_given() -> None:
    assert job_request(parse("submit", "echo", "--expires-in", "10m")).to_json()["expires_in"] == (
        "10m"
    )
    assert job_request(parse("submit", "echo", "--expires-in", "90")).expires_in == "90"


@pytest.mark.parametrize("raw", ["0", "-5", "soon", "10 minutes"])
def test_submit_expires_in_refuses_what_is_not_a_positive_duration(
    raw: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("submit", "echo", "--expires-in", raw)
    assert caught.value.code == 2
    assert "expected a duration > 0" in capsys.readouterr().err


def test_submit_expires_at_needs_its_zone_and_excludes_expires_in() -> None:
    assert (
        job_request(parse("submit", "echo", "--expires-at", "2026-12-03T18:00:00Z")).to_json()[
            "expires_at"
        ]
        == "2026-12-03T18:00:00Z"
    )
    for argv in (
        ("submit", "echo", "--expires-at", "2026-12-03T18:00:00"),
        ("submit", "echo", "--expires-at", "2026-12-03T18:00:00Z", "--expires-in", "5m"),
    ):
        with pytest.raises(SystemExit) as caught:
            parse(*argv)
        assert caught.value.code == 2


def test_submit_priority_reaches_the_job_request() -> None:
    request = job_request(parse("submit", "echo", "--priority", "7"))
    assert request.priority == 7 and request.to_json()["priority"] == 7


def test_submit_without_priority_sends_none() -> None:
    assert "priority" not in job_request(parse("submit", "echo")).to_json()


@pytest.mark.parametrize("bad", ["10", "-1", "1.5", "high"])
def test_submit_priority_out_of_range_exits_2(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("submit", "echo", "--priority", bad)
    assert caught.value.code == 2
    assert "expected an integer from 0 to 9" in capsys.readouterr().err
