import dataclasses
import time

import pytest

from workstream.common import jobs
from workstream.common.errors import ValidationError
from workstream.common.jobs import MAX_DELAY_S, Job, JobSpec, is_job_id, new_job_id
from workstream.common.serialization import MAX_NESTING, ms_to_rfc3339, rfc3339_to_ms


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


# -- every input judged before anything is written (issue 15, findings 5 and 6) -----------------


def test_run_at_beyond_the_delay_cap_is_rejected_naming_run_at() -> None:
    with pytest.raises(ValidationError) as caught:
        JobSpec.from_mapping({"type": "t", "run_at": "9999-12-31T23:59:59.9999Z"})
    assert caught.value.field == "run_at"


def test_run_at_just_inside_the_delay_cap_is_accepted() -> None:
    soon = ms_to_rfc3339(round((time.time() + MAX_DELAY_S - 60) * 1000))
    spec = JobSpec.from_mapping({"type": "t", "run_at": soon})
    assert spec.run_at_ms == rfc3339_to_ms(str(soon))


def test_run_at_a_day_past_the_delay_cap_is_rejected() -> None:
    late = ms_to_rfc3339(round((time.time() + MAX_DELAY_S + 86400) * 1000))
    with pytest.raises(ValidationError, match="run_at"):
        JobSpec.from_mapping({"type": "t", "run_at": late})


def test_run_at_in_the_distant_past_means_now_and_travels_as_no_negative_time() -> None:
    spec = JobSpec.from_mapping({"type": "t", "run_at": "0001-01-01T00:00:00+14:00"})
    assert spec.run_at_ms == 0


def test_run_at_must_be_rfc3339_not_any_iso_8601_spelling() -> None:
    with pytest.raises(ValidationError, match="run_at"):
        JobSpec.from_mapping({"type": "t", "run_at": "2030-W01-1T00:00Z"})


@pytest.mark.parametrize("field", ["delay", "timeout", "max_attempts"])
@pytest.mark.parametrize("value", [10**400, -(10**400), 1e308, float("inf"), float("nan")])
def test_a_number_beyond_what_the_code_represents_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as caught:
        JobSpec.from_mapping({"type": "t", field: value})
    assert caught.value.field == field


@pytest.mark.parametrize("field", ["delay", "timeout", "max_attempts"])
def test_a_huge_integer_given_directly_is_a_validation_error(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        JobSpec(type="t", **{field: 10**400})


def nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


def test_a_payload_nested_at_the_limit_is_accepted_and_encoded() -> None:
    spec = JobSpec.from_mapping({"type": "t", "payload": nested(MAX_NESTING)})
    assert spec.payload_json() == "[" * MAX_NESTING + "0" + "]" * MAX_NESTING


def test_a_payload_nested_one_past_the_limit_is_rejected_naming_payload() -> None:
    with pytest.raises(ValidationError) as caught:
        JobSpec.from_mapping({"type": "t", "payload": nested(MAX_NESTING + 1)})
    assert caught.value.field == "payload"


def test_a_payload_is_encoded_once_when_the_spec_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = JobSpec.from_mapping({"type": "t", "payload": {"n": 1}})
    monkeypatch.setattr(jobs, "dumps", lambda value: pytest.fail("encoded twice"))
    assert spec.payload_json() == '{"n":1}' and spec.payload_json() == '{"n":1}'


@pytest.mark.parametrize("payload", ["\ud800", {"k": "\udcff"}, {"v": float("nan")}, {1, 2}])
def test_a_payload_that_cannot_be_stored_is_rejected_when_the_spec_is_read(payload: object) -> None:
    with pytest.raises(ValidationError) as caught:
        JobSpec.from_mapping({"type": "t", "payload": payload})
    assert caught.value.field == "payload"


def test_a_spec_built_directly_refuses_an_unstorable_payload_at_once() -> None:
    with pytest.raises(ValidationError, match="payload"):
        JobSpec(type="t", payload={"s": "\ud800"})


def test_a_spec_built_directly_carries_its_encoded_payload() -> None:
    assert JobSpec(type="t", payload=[1, None]).payload_json() == "[1,null]"
    assert JobSpec(type="t").payload_json() == "{}"


# -- a stored record always renders -------------------------------------------------------------


def stored(**fields: str) -> dict[str, str]:
    base = {
        "id": "a" * 32,
        "type": "t",
        "queue": "default",
        "status": "scheduled",
        "payload": "{}",
        "attempts": "0",
        "max_attempts": "3",
        "timeout_ms": "1000",
        "created_at": "1700000000000",
    }
    return {**base, **fields}


def test_a_stored_run_at_past_year_9999_renders_clamped_not_as_an_error() -> None:
    body = Job.from_hash(stored(run_at="253402300800000")).to_json()
    assert body["run_at"] == "9999-12-31T23:59:59.999Z"
    assert body["created_at"] == "2023-11-14T22:13:20.000Z"


@pytest.mark.parametrize("raw", ["soon", "1e+20", "nan", "inf", "-99999999999999999999999"])
def test_a_stored_timestamp_that_is_not_a_time_renders_clamped_or_null(raw: str) -> None:
    body = Job.from_hash(stored(run_at=raw)).to_json()
    assert body["run_at"] in (None, "9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00.000Z")


def test_stored_counters_that_are_not_integers_do_not_break_reading() -> None:
    job = Job.from_hash(stored(attempts="x", max_attempts="", timeout_ms="1e400"))
    assert job.to_json()["attempts"] == 0


@pytest.mark.parametrize("raw", ["{not json", "[" * 5000 + "]" * 5000, "[" * 300 + "]" * 300])
def test_a_stored_payload_no_reader_can_use_is_answered_as_its_text(raw: str) -> None:
    body = Job.from_hash(stored(payload=raw, result=raw)).to_json()
    assert body["payload"] == raw and body["result"] == raw


def test_a_stored_payload_with_many_brackets_but_shallow_is_read_as_json() -> None:
    raw = '{"rows":' + str([[i] for i in range(100)]) + ',"s":"[[[["}'
    assert Job.from_hash(stored(payload=raw)).payload["s"] == "[[[["


def test_a_stored_string_full_of_brackets_is_read_as_the_string() -> None:
    assert Job.from_hash(stored(payload='"' + "[" * 100 + '"')).payload == "[" * 100
