"""Outcomes of one attempt: whatever a handler returns or raises, the text is storable."""

from __future__ import annotations

from typing import Any

import pytest

from workstream.common.jobs import ClaimedJob
from workstream.worker import execution
from workstream.worker.execution import MAX_ERROR_CHARS, finish


def job() -> ClaimedJob:
    return ClaimedJob(
        id="j", type="t", queue="default", payload_json="null", attempt=1, max_attempts=1,
        timeout_ms=1000, lease="1", created_at=0,
    )  # fmt: skip


def test_an_error_message_with_a_lone_surrogate_is_stored_escaped() -> None:
    outcome = finish(job(), None, RuntimeError("bad \udcff"))
    assert outcome.error == "RuntimeError: bad \\udcff"
    outcome.error.encode()


def test_an_error_message_is_cut_to_a_bounded_size() -> None:
    outcome = finish(job(), None, ValueError("x" * (MAX_ERROR_CHARS * 3)))
    assert len(outcome.error) == MAX_ERROR_CHARS


def test_an_exception_whose_str_fails_is_still_reported() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    outcome = finish(job(), None, Unprintable())
    assert outcome.error.startswith("Unprintable: ") and not outcome.ok


def test_a_system_exit_from_a_handler_is_the_jobs_failure() -> None:
    outcome = finish(job(), None, SystemExit(2))
    assert (outcome.ok, outcome.error, outcome.permanent) == (False, "SystemExit: 2", False)


def test_a_result_whose_encoding_recurses_too_deep_is_a_permanent_job_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def recursing(value: Any) -> str:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(execution, "dumps", recursing)
    outcome = finish(job(), {"deep": []}, None)
    assert not outcome.ok and outcome.permanent
    assert outcome.error == (
        "result is not JSON-serialisable: RecursionError: maximum recursion depth exceeded"
    )


def test_a_payload_nested_past_the_parser_is_a_permanent_job_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deep = ClaimedJob(
        id="j", type="echo", queue="default", payload_json="[" * 100_000 + "]" * 100_000,
        attempt=1, max_attempts=1, timeout_ms=1000, lease="1", created_at=0,
    )  # fmt: skip
    monkeypatch.setattr(execution, "lookup", lambda job_type: lambda payload, ctx: payload)
    outcome = execution.prepare(deep, "w", None)  # type: ignore[arg-type]
    assert isinstance(outcome, execution.Outcome) and outcome.permanent
    assert outcome.error.startswith("payload is not valid JSON: ")


def test_an_error_with_a_code_is_stored_under_its_code_not_its_class() -> None:
    class Refused(Exception):
        code = "target_refused"

    assert finish(job(), None, Refused("no entry")).error == "target_refused: no entry"
    assert finish(job(), None, Refused("target_refused: x")).error == "target_refused: x"
    assert finish(job(), None, ValueError("bad")).error == "ValueError: bad"


def test_the_http_jobs_forbidden_target_is_stored_as_target_forbidden() -> None:
    from workstream.worker.http_job import TargetForbidden

    outcome = finish(job(), None, TargetForbidden("target_forbidden: 127.0.0.2 is loopback"))
    assert outcome.error == "target_forbidden: 127.0.0.2 is loopback" and outcome.permanent
