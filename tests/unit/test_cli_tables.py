"""Human output of the CLI: alignment, cell rendering, the WorkStream tables, the progress bar."""

from __future__ import annotations

import io

from workstream.cli import tables
from workstream.cli.progress import ProgressBar, render


def test_table_columns_are_padded_to_the_widest_cell() -> None:
    text = tables.render_table(("NAME", "KIND"), [("a", "long-kind"), ("longer-name", "x")])
    lines = text.splitlines()
    assert lines == [
        "NAME         KIND",
        "a            long-kind",
        "longer-name  x",
    ]


def test_numeric_columns_are_right_aligned() -> None:
    text = tables.render_table(("QUEUE", "PENDING"), [("a", 5), ("b", 12345)])
    assert text.splitlines() == [
        "QUEUE  PENDING",
        "a            5",
        "b        12345",
    ]


def test_empty_table_prints_the_empty_message() -> None:
    assert tables.render_table(("A",), [], empty="no rows") == "no rows"


def test_cells_render_none_bool_float_and_json() -> None:
    assert tables.cell(None) == "-"
    assert tables.cell(True) == "yes"
    assert tables.cell(False) == "no"
    assert tables.cell(300.0) == "300"
    assert tables.cell({"a": [1, 2]}) == '{"a":[1,2]}'


def test_control_characters_in_data_cannot_break_a_row() -> None:
    text = tables.render_table(("ERROR",), [("line one\nline two\x1b[31m",)])
    assert text.splitlines() == ["ERROR", "line one line two [31m"]


def test_long_errors_are_truncated_in_the_failed_table() -> None:
    job = {"id": "a" * 32, "type": "fail", "queue": "q", "attempts": 3, "error": "x" * 500}
    row = tables.failed_table([job]).splitlines()[1]
    assert row.endswith("x" * (tables.ERROR_WIDTH - 1) + "…")


def test_timestamps_show_date_time_and_zone_without_fraction() -> None:
    assert tables.timestamp("2026-11-23T06:50:02.123Z") == "2026-11-23 06:50:02 UTC"
    assert tables.timestamp(None) == "-"


def test_queues_table_shows_every_count_and_paused() -> None:
    queues = [
        {"name": "default", "pending": 3, "processing": 1, "scheduled": 0, "failed": 2,
         "paused": False},
        {"name": "mail", "pending": 0, "processing": 0, "scheduled": 7, "failed": 0,
         "paused": True},
    ]  # fmt: skip
    assert tables.queues_table(queues).splitlines() == [
        "QUEUE    PENDING  PROCESSING  SCHEDULED  FAILED  PAUSED",
        "default        3           1          0       2  no",
        "mail           0           0          7       0  yes",
    ]


def test_workers_table_shows_busy_slots_and_heartbeat_age() -> None:
    worker = {
        "id": "host-1-abc",
        "host": "host",
        "pid": 1,
        "queues": ["default", "mail"],
        "slots_busy": 2,
        "slots_total": 10,
        "started_at": "2026-11-23T06:50:02.123Z",
        "last_heartbeat": "2026-11-23T06:51:02.123Z",
        "heartbeat_age_s": 1.5,
    }
    row = tables.workers_table([worker]).splitlines()[1].split()
    assert row[:5] == ["host-1-abc", "host", "1", "default,mail", "2/10"]
    assert row[5:] == ["2026-11-23", "06:50:02", "UTC", "1.5s", "ago"]


def test_job_detail_lists_fields_with_aligned_keys() -> None:
    job = {"id": "f" * 32, "type": "echo", "status": "completed", "result": {"ok": True}}
    lines = tables.job_detail(job).splitlines()
    assert "id               " + "f" * 32 in lines
    assert 'result           {"ok":true}' in lines
    assert "status           completed" in lines


def test_progress_line_shows_bar_count_percent_and_rate() -> None:
    line = render(500, 1000, 2.0, "submitting", width=10)
    assert line == "submitting [#####.....]  500/1000  50% 250/s"


def test_disabled_progress_bar_writes_nothing() -> None:
    stream = io.StringIO()
    bar = ProgressBar(10, stream, enabled=False)
    bar.update(5)
    bar.finish()
    assert stream.getvalue() == ""


def test_progress_bar_redraws_in_place_and_always_draws_the_end() -> None:
    now = [0.0]
    stream = io.StringIO()
    bar = ProgressBar(10, stream, enabled=True, clock=lambda: now[0], min_interval_s=1.0)
    bar.update(1)
    bar.update(2)  # too soon: skipped
    now[0] = 0.5
    bar.update(10)  # the end is always drawn
    bar.finish()
    drawn = stream.getvalue()
    assert drawn.count("\r") == 2
    assert " 2/10" not in drawn
    assert drawn.endswith("10/10 100% 20/s\n")


def test_workers_table_shows_handlers_when_the_server_reports_them() -> None:
    worker = {"id": "w", "queues": ["default"], "handlers": ["echo", "sleep"]}
    lines = tables.workers_table([worker]).splitlines()
    assert lines[0].split()[-1] == "HANDLERS"
    assert lines[1].split()[-1] == "echo,sleep"


def test_queues_table_warns_about_a_queue_no_worker_serves() -> None:
    queues = [
        {"name": "mail", "pending": 1, "processing": 0, "scheduled": 0, "failed": 0,
         "paused": False, "workers": 0, "unserved": True, "unhandled_types": ["email_send"]},
    ]  # fmt: skip
    lines = tables.queues_table(queues).splitlines()
    assert lines[0].split()[-1] == "WORKERS"
    assert lines[-1] == "warning: queue mail has 1 pending job and no live worker serving it"


def test_queues_table_warns_about_types_no_serving_worker_handles() -> None:
    queues = [
        {"name": "mail", "pending": 4, "processing": 0, "scheduled": 0, "failed": 0,
         "paused": False, "workers": 2, "unserved": False, "unhandled_types": ["a", "b"]},
    ]  # fmt: skip
    lines = tables.queues_table(queues).splitlines()
    assert lines[-1] == "warning: queue mail: no live worker handles type a, b"


def test_job_detail_shows_each_attempt_and_its_traceback() -> None:
    job = {
        "id": "f" * 32,
        "status": "failed",
        "history": [
            {"attempt": 1, "worker": "w-1", "started_at": "2026-11-23T06:50:02.123Z",
             "ended_at": "2026-11-23T06:50:03.000Z", "outcome": "failed",
             "error": "boom", "traceback": "Traceback (most recent call last):\n  x\x1b[31m"},
            {"attempt": 2, "worker": "w-2", "started_at": None, "ended_at": None,
             "outcome": "lost", "error": None, "traceback": None},
        ],
    }  # fmt: skip
    text = tables.job_detail(job)
    lines = text.splitlines()
    assert "history (oldest first)" in lines
    assert lines[lines.index("history (oldest first)") + 1].split() == [
        "ATTEMPT", "WORKER", "STARTED", "ENDED", "OUTCOME", "ERROR",
    ]  # fmt: skip
    assert "traceback of attempt 1:" in lines
    assert "    Traceback (most recent call last):" in lines
    assert "\x1b" not in text  # an escape sequence in a traceback cannot drive the terminal
    assert "traceback of attempt 2:" not in lines


def test_job_detail_without_history_from_an_older_server_shows_none() -> None:
    assert "history" not in tables.job_detail({"id": "a", "status": "pending"})


def test_job_detail_shows_progress_and_a_requested_cancel() -> None:
    job = {
        "id": "a",
        "status": "processing",
        "cancel_requested": True,
        "progress": {"value": 0.45, "message": "3 of 10 files"},
    }
    lines = tables.job_detail(job).splitlines()
    assert "status           processing (cancelling…)" in lines
    assert "progress         45% — 3 of 10 files" in lines


def test_progress_that_is_not_a_fraction_is_shown_as_json() -> None:
    assert tables.progress_text({"value": {"done": 3}, "message": None}) == '{"done":3}'
    assert tables.progress_text([1, 2]) == "[1,2]"
    assert "progress" not in tables.job_detail({"id": "a", "status": "pending"})
