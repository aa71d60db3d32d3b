"""callback_url through the Python client and the CLI: sent when given, read back with the
callback's id, absent otherwise."""

from __future__ import annotations

from workstream.cli.commands import build_parser, job_request
from workstream.client import JobRequest
from workstream.client.models import Job

URL = "https://example.com/hooks/done"


def test_a_request_sends_its_callback_url_only_when_given() -> None:
    assert JobRequest("echo", callback_url=URL).to_json()["callback_url"] == URL
    assert "callback_url" not in JobRequest("echo").to_json()


def test_a_job_reads_its_callback_fields() -> None:
    job = Job.from_json({"id": "a", "callback_url": URL, "callback_job_id": "b"})
    assert (job.callback_url, job.callback_job_id, job.callback_for) == (URL, "b", None)
    assert Job.from_json({"id": "b", "callback_for": "a"}).callback_for == "a"


def test_workstream_submit_takes_a_callback_url() -> None:
    args = build_parser().parse_args(["submit", "echo", "--callback-url", URL])
    assert job_request(args).callback_url == URL
    assert job_request(build_parser().parse_args(["submit", "echo"])).callback_url is None
