import json
import logging

from workstream.common.logs import JsonFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("worker", logging.WARNING, __file__, 1, "job.failed", (), None)
    record.__dict__.update(extra)
    return record


def test_a_log_line_is_one_json_object_with_the_extra_fields() -> None:
    line = JsonFormatter().format(_record(job_id="j1", attempts=2))
    entry = json.loads(line)
    assert (entry["event"], entry["job_id"], entry["attempts"]) == ("job.failed", "j1", 2)


def test_a_value_json_cannot_hold_is_written_as_text_on_the_same_line() -> None:
    line = JsonFormatter().format(_record(error="KeyError: '\ud800'", ratio=float("nan")))
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["error"] == "KeyError: '\ud800'"
    assert entry["ratio"] == "nan"
