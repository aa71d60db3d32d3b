"""What one attempt gives the attempt history: the handler's traceback, bounded and storable,
and a warning log line carrying it."""

from __future__ import annotations

import logging
import traceback
from typing import Any

import pytest
import redis

from workstream.common.jobs import MAX_TRACEBACK_CHARS, ClaimedJob
from workstream.worker import execution
from workstream.worker.execution import run_job
from workstream.worker.registry import JobContext, handler

CLIENT = redis.Redis(port=1)  # never used: these handlers make no Redis call


@handler("history_missing_key")
def missing_key(payload: Any, ctx: JobContext) -> Any:
    d: dict[str, int] = {}
    return d["missing"]


@handler("history_huge_error")
def huge_error(payload: Any, ctx: JobContext) -> Any:
    raise ValueError("x" * 50_000 + " END")


@handler("history_surrogate")
def surrogate(payload: Any, ctx: JobContext) -> Any:
    raise ValueError("bad \udcff byte")


def _job(job_type: str) -> ClaimedJob:
    return ClaimedJob("a" * 32, job_type, "default", "{}", 1, 3, 5000, "1", 0)


def test_a_handler_error_carries_its_traceback_down_to_the_failing_line() -> None:
    outcome = run_job(_job("history_missing_key"), "w1", CLIENT)
    assert outcome.error == "KeyError: 'missing'" and not outcome.permanent
    assert outcome.traceback.startswith("Traceback (most recent call last):")
    assert 'return d["missing"]' in outcome.traceback
    assert outcome.traceback.rstrip().endswith("KeyError: 'missing'")


def test_a_long_traceback_keeps_its_end_within_the_bound() -> None:
    outcome = run_job(_job("history_huge_error"), "w1", CLIENT)
    assert len(outcome.traceback) <= MAX_TRACEBACK_CHARS
    assert outcome.traceback.startswith("...(earlier lines cut)")
    assert outcome.traceback.rstrip().endswith(" END")


def test_a_traceback_with_text_that_is_not_utf8_is_still_storable() -> None:
    outcome = run_job(_job("history_surrogate"), "w1", CLIENT)
    outcome.traceback.encode()  # would raise UnicodeEncodeError
    assert "bad \\udcff byte" in outcome.traceback


def test_a_traceback_that_cannot_be_formatted_leaves_the_error_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> list[str]:
        raise RuntimeError("formatter broke")

    monkeypatch.setattr(traceback, "format_exception", broken)
    outcome = run_job(_job("history_missing_key"), "w1", CLIENT)
    assert outcome.error == "KeyError: 'missing'" and outcome.traceback == ""


def test_a_handler_error_is_logged_at_warning_with_job_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="worker.job"):
        run_job(_job("history_missing_key"), "w1", CLIENT)
    (record,) = [r for r in caplog.records if r.getMessage() == "job.handler_error"]
    assert record.levelno == logging.WARNING
    fields: dict[str, Any] = vars(record)
    assert fields["job_id"] == "a" * 32 and fields["job_type"] == "history_missing_key"
    assert 'd["missing"]' in fields["traceback"]


def test_an_unregistered_type_is_a_retryable_failure_without_traceback() -> None:
    outcome = run_job(_job("nobody_handles_this"), "w1", CLIENT)
    assert outcome.error == "no handler registered for type 'nobody_handles_this'"
    assert not outcome.permanent and outcome.traceback == ""


def test_a_timeout_has_no_traceback_and_its_error_marks_it_timed_out() -> None:
    outcome = execution.timed_out(_job("history_missing_key"))
    assert outcome.timed_out and outcome.traceback == ""
    assert outcome.error == "timed out after 5s"
