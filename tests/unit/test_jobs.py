import dataclasses

import pytest

from workstream.common.errors import ValidationError
from workstream.common.jobs import JobSpec, is_job_id, new_job_id
from workstream.common.serialization import ms_to_rfc3339, rfc3339_to_ms


def test_a_minimal_submission_defaults_to_the_default_queue() -> None:
    spec = JobSpec.from_mapping({"type": "email_send", "payload": {"to": "a@b.c"}})
    assert spec.queue == "default"
    assert spec.payload_json() == '{"to":"a@b.c"}'


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "bad type"}, "type"),
        ({"type": "x" * 129}, "type"),
        ({"type": "ok", "queue": "a:b"}, "queue"),
        ({"type": "ok", "queue": "x" * 65}, "queue"),
        ({"type": "ok", "idempotency_key": "has space"}, "idempotency_key"),
        ({"type": "ok", "max_attempts": 0}, "max_attempts"),
        ({"type": "ok", "max_attempts": "3"}, "max_attempts"),
        ({"type": "ok", "max_attempts": True}, "max_attempts"),
        ({"type": "ok", "timeout": -1}, "timeout"),
        ({"type": "ok", "delay": -5}, "delay"),
        ({"type": "ok", "run_at": "yesterday"}, "run_at"),
        ({"type": "ok", "run_at": "2030-01-01T00:00:00"}, "run_at"),
        ({"type": "ok", "delay": 1, "run_at": "2030-01-01T00:00:00Z"}, "run_at"),
        ({"type": "ok", "colour": "red"}, "colour"),
        ({"payload": {}}, "type"),
        ({"type": 5}, "type"),
        ({"type": "echo\n"}, "type"),
        ({"type": "ok", "queue": "default\n"}, "queue"),
    ],
)
def test_invalid_submissions_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        JobSpec.from_mapping(body)
    assert caught.value.field == field


def test_a_spec_read_from_json_equals_one_built_directly_and_cannot_be_changed() -> None:
    body = {"type": "t", "payload": [1], "queue": "q", "max_attempts": 2, "timeout": 3, "delay": 4}
    spec = JobSpec.from_mapping(body)
    assert spec == JobSpec(type="t", payload=[1], queue="q", max_attempts=2, timeout=3, delay=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.queue = "other"  # type: ignore[misc]


def test_a_non_object_body_is_rejected() -> None:
    with pytest.raises(ValidationError):
        JobSpec.from_mapping(["type", "x"])


def test_nan_payloads_are_rejected_because_other_languages_cannot_read_them() -> None:
    with pytest.raises(ValidationError, match="payload"):
        JobSpec(type="x", payload={"v": float("nan")}).payload_json()


def test_job_ids_are_32_lowercase_hex_characters() -> None:
    job_id = new_job_id()
    assert is_job_id(job_id)
    assert not is_job_id(job_id.upper())
    assert not is_job_id("../etc/passwd")


def test_rfc3339_round_trips_through_milliseconds() -> None:
    ms = rfc3339_to_ms("2026-11-23T06:50:02.123Z")
    assert ms_to_rfc3339(ms) == "2026-11-23T06:50:02.123Z"
    assert rfc3339_to_ms("2026-11-23T08:50:02.123+02:00") == ms


def test_rfc3339_is_right_across_second_boundaries_and_back() -> None:
    base = rfc3339_to_ms("2026-11-23T06:50:02.000Z")
    expected = {
        base - 1: "2026-11-23T06:50:01.999Z",
        base: "2026-11-23T06:50:02.000Z",
        base + 999: "2026-11-23T06:50:02.999Z",
        base + 1000: "2026-11-23T06:50:03.000Z",
        0: "1970-01-01T00:00:00.000Z",
        -1: "1969-12-31T23:59:59.999Z",
    }
    for ms in [base - 1, base, base + 999, base + 1000, base, 0, -1, base - 1]:
        assert ms_to_rfc3339(ms) == expected[ms]
