"""How a stored history reads back (common.jobs.Job.from_hash): what the scripts wrote, the
completed attempt rendered from the job's own fields, and whatever a hand edit left."""

from __future__ import annotations

from workstream.common.jobs import Job
from workstream.common.serialization import dumps

BASE = {
    "id": "a" * 32,
    "type": "t",
    "queue": "default",
    "status": "failed",
    "attempts": "1",
    "max_attempts": "1",
    "timeout_ms": "1000",
    "created_at": "1700000000000",
}


def test_a_completed_job_ends_its_history_with_the_attempt_its_fields_describe() -> None:
    failed = {"attempt": 1, "worker": "w1", "started_at": 1700000001000,
              "ended_at": 1700000002000, "outcome": "failed", "error": "KeyError: 'x'",
              "traceback": "Traceback ..."}  # fmt: skip
    data = {**BASE, "status": "completed", "attempts": "2", "worker": "w2",
            "started_at": "1700000003000", "finished_at": "1700000004000",
            "history": dumps([failed])}  # fmt: skip
    history = Job.from_hash(data).history
    assert history == [
        {"attempt": 1, "worker": "w1", "started_at": "2023-11-14T22:13:21.000Z",
         "ended_at": "2023-11-14T22:13:22.000Z", "outcome": "failed",
         "error": "KeyError: 'x'", "traceback": "Traceback ..."},
        {"attempt": 2, "worker": "w2", "started_at": "2023-11-14T22:13:23.000Z",
         "ended_at": "2023-11-14T22:13:24.000Z", "outcome": "completed",
         "error": None, "traceback": None},
    ]  # fmt: skip


def test_a_history_that_is_not_json_reads_as_none_recorded() -> None:
    assert Job.from_hash({**BASE, "history": "[{not json"}).history == []


def test_odd_entries_read_as_defaults_and_non_objects_are_skipped() -> None:
    odd = dumps([7, {"attempt": "x", "outcome": "exploded", "started_at": [], "error": 5}])
    (entry,) = Job.from_hash({**BASE, "history": odd}).history or []
    assert entry == {"attempt": 0, "worker": "", "started_at": None, "ended_at": None,
                     "outcome": "lost", "error": None, "traceback": None}  # fmt: skip


def test_a_job_read_for_a_listing_carries_no_history_and_its_json_leaves_it_out() -> None:
    job = Job.from_hash({**BASE, "history": "[]"}, with_history=False)
    assert job.history is None and "history" not in job.to_json()
