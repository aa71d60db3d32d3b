"""The client's Job model reads the progress and cancel_requested fields (absent: None/False)."""

from __future__ import annotations

from workstream.client import Job


def test_job_reads_progress_and_cancel_requested() -> None:
    progress = {"value": 0.45, "message": "3 of 10 files"}
    job = Job.from_json(
        {"id": "a", "status": "processing", "progress": progress, "cancel_requested": True}
    )
    assert job.progress == progress
    assert job.cancel_requested is True


def test_job_from_an_older_server_has_no_progress_and_no_cancel_request() -> None:
    job = Job.from_json({"id": "a", "status": "pending"})
    assert job.progress is None
    assert job.cancel_requested is False


def test_job_reads_its_priority_and_an_older_server_reads_as_0() -> None:
    assert Job.from_json({"id": "a", "status": "pending", "priority": 7}).priority == 7
    assert Job.from_json({"id": "a", "status": "pending"}).priority == 0
