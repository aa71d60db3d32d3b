"""LOG_FORMAT (text for people, JSON for machines, same fields) and LOG_ROUTINE (per-request
and per-job lines filed under debug, as `workstream dev` asks)."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from workstream.common.logs import (
    TextFormatter,
    chosen_format,
    configure_logging,
    worker_id_var,
)
from workstream.common.settings import Settings


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    access = logging.getLogger("api.access")
    saved = (root.handlers[:], root.level, access.level)
    yield
    root.handlers[:], _, _ = saved
    root.setLevel(saved[1])
    access.setLevel(saved[2])


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _configure(stream: io.StringIO, **env: str) -> None:
    configure_logging(Settings.from_environ(env), stream=stream)


def _log_job(event: str = "job.failed", level: int = logging.INFO) -> None:
    token = worker_id_var.set("host-1-abc")
    try:
        logging.getLogger("worker.fetcher").log(
            level, event, extra={"job_id": "j1", "job_type": "email send"}
        )
    finally:
        worker_id_var.reset(token)


def test_a_terminal_gets_text_and_a_pipe_gets_json() -> None:
    assert chosen_format("", Terminal()) == "text"
    assert chosen_format("", io.StringIO()) == "json"


def test_an_explicit_log_format_wins_over_the_terminal_guess() -> None:
    assert chosen_format("json", Terminal()) == "json"
    assert chosen_format("text", io.StringIO()) == "text"


def test_a_text_line_keeps_job_id_type_and_worker_id_as_fields() -> None:
    out = Terminal()
    _configure(out)
    _log_job()
    line = out.getvalue().strip()
    assert " info    worker.fetcher job.failed " in line
    assert 'worker_id=host-1-abc job_id=j1 job_type="email send"' in line


def test_a_json_line_keeps_the_same_fields() -> None:
    out = io.StringIO()
    _configure(out)
    _log_job()
    entry = json.loads(out.getvalue())
    assert (entry["event"], entry["job_id"], entry["job_type"], entry["worker_id"]) == (
        "job.failed",
        "j1",
        "email send",
        "host-1-abc",
    )


def test_a_text_line_puts_the_traceback_on_the_lines_below() -> None:
    record = logging.LogRecord("api", logging.ERROR, __file__, 1, "http.unhandled_error", (), None)
    try:
        raise KeyError("boom")
    except KeyError:
        record.exc_info = sys.exc_info()
    first, *rest = TextFormatter().format(record).splitlines()
    assert first.endswith("http.unhandled_error")
    assert rest[0] == "Traceback (most recent call last):"


def test_log_routine_debug_hides_completed_jobs_at_info_but_not_failures() -> None:
    out = io.StringIO()
    _configure(out, LOG_ROUTINE="debug")
    _log_job("job.completed")
    _log_job("job.failed")
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert events == ["job.failed"]


def test_log_routine_debug_shows_completed_jobs_as_debug_at_log_level_debug() -> None:
    out = io.StringIO()
    _configure(out, LOG_ROUTINE="debug", LOG_LEVEL="debug")
    _log_job("job.completed")
    entry = json.loads(out.getvalue())
    assert (entry["event"], entry["level"]) == ("job.completed", "debug")


def test_log_routine_debug_skips_building_access_lines_at_info() -> None:
    _configure(io.StringIO(), LOG_ROUTINE="debug")
    assert not logging.getLogger("api.access").isEnabledFor(logging.INFO)


def test_access_lines_stay_at_info_by_default() -> None:
    out = io.StringIO()
    _configure(out)
    logging.getLogger("api.access").info("http.request", extra={"status": 200})
    assert json.loads(out.getvalue())["level"] == "info"


def test_a_text_line_joins_lists_with_commas() -> None:
    out = Terminal()
    _configure(out)
    logging.getLogger("worker").info("worker.started", extra={"queues": ["high", "default"]})
    assert out.getvalue().rstrip().endswith(" worker.started queues=high,default")


def test_a_text_line_puts_a_multi_line_field_below_it_as_is() -> None:
    out = Terminal()
    _configure(out)
    trace = 'Traceback (most recent call last):\n  File "myapp/jobs.py", line 6\nKeyError: 1\n'
    logging.getLogger("worker.job").warning(
        "job.handler_error", extra={"job_id": "j1", "traceback": trace}
    )
    first, *rest = out.getvalue().splitlines()
    assert first.endswith("job.handler_error job_id=j1")
    assert rest == ["traceback:", *trace.splitlines()]
