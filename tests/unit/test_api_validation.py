"""Request validation, the error table and the metrics parser: pure logic, no Redis."""

from __future__ import annotations

import io
import math
from typing import Any

import falcon
import falcon.testing
import pytest

from workstream.api import validation
from workstream.api.errors import ApiError, error_body
from workstream.api.middleware import BearerAuth, is_public
from workstream.api.openapi import build_document
from workstream.common.metrics import BOUNDS_S, Histogram, parse_stats
from workstream.common.serialization import MAX_NESTING
from workstream.common.states import JobStatus

LIMIT = 100


def request(
    body: bytes = b"",
    content_type: str | None = "application/json",
    query: str = "",
    env: dict[str, Any] | None = None,
) -> falcon.Request:
    headers = {"Content-Type": content_type} if content_type else {}
    environ = falcon.testing.create_environ(
        method="POST", body=body, headers=headers, query_string=query
    )
    environ.update(env or {})
    return falcon.Request(environ)


def code_of(excinfo: pytest.ExceptionInfo[ApiError]) -> tuple[int, str, str | None]:
    ex = excinfo.value
    return ex.status_code, ex.error_code, ex.field


def test_read_json_decodes_an_object() -> None:
    assert validation.read_json(request(b'{"type": "a"}'), LIMIT) == {"type": "a"}


def test_read_json_accepts_a_charset_parameter() -> None:
    req = request(b"[]", content_type="application/json; charset=utf-8")
    assert validation.read_json(req, LIMIT) == []


def test_read_json_rejects_malformed_json_as_invalid_json() -> None:
    with pytest.raises(ApiError) as excinfo:
        validation.read_json(request(b'{"type": '), LIMIT)
    assert code_of(excinfo) == (400, "invalid_json", None)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_read_json_rejects_non_standard_constants(constant: bytes) -> None:
    with pytest.raises(ApiError) as excinfo:
        validation.read_json(request(b'{"payload": ' + constant + b"}"), LIMIT)
    assert code_of(excinfo)[1] == "invalid_json"


def test_read_json_rejects_invalid_utf8_as_invalid_json() -> None:
    with pytest.raises(ApiError) as excinfo:
        validation.read_json(request(b'"\xff"'), LIMIT)
    assert code_of(excinfo)[1] == "invalid_json"


def test_read_json_rejects_deep_nesting_as_invalid_json() -> None:
    with pytest.raises(ApiError) as excinfo:
        validation.read_json(request(b"[" * 100_000 + b"]" * 100_000), 300_000)
    assert code_of(excinfo)[1] == "invalid_json"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_read_json_rejects_other_media_types_with_415(content_type: str | None) -> None:
    with pytest.raises(ApiError) as excinfo:
        validation.read_json(request(b"{}", content_type=content_type), LIMIT)
    assert code_of(excinfo) == (415, "unsupported_media_type", None)


def test_read_body_refuses_a_large_content_length_before_reading() -> None:
    class Unreadable(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise AssertionError("the body must not be read")

    req = request(env={"CONTENT_LENGTH": str(LIMIT + 1), "wsgi.input": Unreadable()})
    with pytest.raises(ApiError) as excinfo:
        validation.read_body(req, LIMIT)
    assert code_of(excinfo) == (413, "payload_too_large", None)


def test_read_body_reads_at_most_limit_plus_one_bytes_of_a_chunked_body() -> None:
    stream = io.BytesIO(b"x" * (LIMIT * 10))
    req = request(env={"CONTENT_LENGTH": "", "wsgi.input": stream, "wsgi.input_terminated": True})
    with pytest.raises(ApiError) as excinfo:
        validation.read_body(req, LIMIT)
    assert code_of(excinfo)[0] == 413
    assert stream.tell() == LIMIT + 1


def test_read_body_accepts_a_chunked_body_within_the_limit() -> None:
    stream = io.BytesIO(b"x" * LIMIT)
    req = request(env={"CONTENT_LENGTH": "", "wsgi.input": stream, "wsgi.input_terminated": True})
    assert validation.read_body(req, LIMIT) == b"x" * LIMIT


def test_job_spec_rejects_a_type_with_a_trailing_newline() -> None:
    with pytest.raises(Exception) as excinfo:
        validation.job_spec({"type": "echo\n"})
    assert getattr(excinfo.value, "field", None) == "type"


def test_batch_names_the_index_and_field_of_a_bad_job() -> None:
    with pytest.raises(ApiError) as excinfo:
        validation.batch_specs({"jobs": [{"type": "a"}, {"type": "a"}, {"type": 5}]})
    assert code_of(excinfo) == (400, "validation_error", "jobs[2].type")


def test_batch_names_a_job_that_is_not_an_object() -> None:
    with pytest.raises(ApiError) as excinfo:
        validation.batch_specs({"jobs": [{"type": "a"}, 7]})
    assert code_of(excinfo)[2] == "jobs[1]"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"jobs": []}, "jobs"),
        ({"jobs": [{"type": "a"}] * 1001}, "jobs"),
        ({"jobs": {}}, "jobs"),
        ({"jobs": [{"type": "a"}], "extra": 1}, "extra"),
        ([], "body"),
    ],
)
def test_batch_rejects_a_malformed_envelope(body: Any, field: str) -> None:
    with pytest.raises(ApiError) as excinfo:
        validation.batch_specs(body)
    assert code_of(excinfo)[2] == field


@pytest.mark.parametrize("raw", ["0" * 32 + "\n", "../x", "a b", "x" * 129, "ü", ""])
def test_job_id_that_is_not_an_id_answers_job_not_found(raw: str) -> None:
    with pytest.raises(ApiError) as excinfo:
        validation.job_id(raw)
    assert code_of(excinfo) == (404, "job_not_found", None)


@pytest.mark.parametrize("raw", ["abc", "0" * 31, "A" * 32, "order:42.resize-1", "0" * 32])
def test_a_client_chosen_id_or_a_made_one_names_a_job(raw: str) -> None:
    assert validation.job_id(raw) == raw


def test_a_batch_giving_one_id_to_two_jobs_names_the_second() -> None:
    body = {"jobs": [{"type": "a", "id": "x"}, {"type": "a", "id": "x"}]}
    with pytest.raises(ApiError) as excinfo:
        validation.batch_specs(body)
    assert code_of(excinfo)[2] == "jobs[1].id"


@pytest.mark.parametrize("raw", ["", "a b", "x" * 65, "q\n", "ü"])
def test_malformed_queue_name_is_a_validation_error(raw: str) -> None:
    with pytest.raises(ApiError) as excinfo:
        validation.queue_name(raw)
    assert code_of(excinfo) == (400, "validation_error", "name")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("wait=61", "wait"),
        ("wait=-1", "wait"),
        ("wait=nan", "wait"),
        ("wait=soon", "wait"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=%C2%B2", "limit"),
        ("status=done", "status"),
        ("queue=a%20b", "queue"),
        ("type=a%20b", "type"),
        ("cursor=abc", "cursor"),
        ("cursor=1-99999999", "cursor"),
    ],
)
def test_bad_query_parameters_name_the_field(query: str, field: str) -> None:
    req = request(query=query)
    readers = {
        "wait": validation.wait_seconds,
        "limit": validation.limit,
        "status": validation.status_filter,
        "queue": lambda r: validation.name_filter(r, "queue"),
        "type": lambda r: validation.name_filter(r, "type"),
        "cursor": validation.cursor,
    }
    with pytest.raises(ApiError) as excinfo:
        readers[field](req)
    assert code_of(excinfo) == (400, "validation_error", field)


def test_query_parameters_default_when_absent() -> None:
    req = request()
    assert validation.wait_seconds(req) == 0
    assert validation.limit(req) == validation.DEFAULT_LIMIT
    assert validation.status_filter(req) is None
    assert validation.cursor(req) is None


def test_status_filter_reads_a_status() -> None:
    assert validation.status_filter(request(query="status=failed")) is JobStatus.FAILED


def test_error_body_adds_the_field_for_validation_errors() -> None:
    ex = ApiError(400, "validation_error", "type: required", field="type")
    body = error_body(request(), ex)
    assert body == {
        "error": {"code": "validation_error", "message": "type: required", "field": "type"}
    }


def test_error_body_gives_routing_errors_a_stable_code() -> None:
    assert error_body(request(), falcon.HTTPNotFound())["error"]["code"] == "not_found"
    assert error_body(request(), falcon.HTTPMethodNotAllowed(["GET"]))["error"]["code"] == (
        "method_not_allowed"
    )


def test_health_and_ui_are_public_and_everything_else_is_not() -> None:
    assert is_public("/health") and is_public("/ui") and is_public("/ui/static/app.js")
    assert not is_public("/jobs") and not is_public("/uix") and not is_public("/metrics")


def test_bearer_auth_accepts_any_configured_token_and_rejects_others() -> None:
    auth = BearerAuth(["one", "two"])
    assert auth._matches(b"two") and not auth._matches(b"three") and not auth._matches(b"")


def test_parse_stats_splits_counters_and_histograms() -> None:
    stats = {
        "created|default|echo": 3,
        "failed|mail|send": 1,
        "wait|default|1": 2,
        "wait|default|16": 1,
        "wait_sum_ms|default": 70000,
        "stale_completions": 4,
        "something|new": 9,
    }
    counters, histograms = parse_stats(stats)
    assert counters == {("created", "default", "echo"): 3, ("failed", "mail", "send"): 1}
    wait = histograms["wait"]["default"]
    assert wait.buckets[0] == (0.001, 2)
    assert wait.buckets[-1] == (math.inf, 3)
    assert wait.count == 3 and wait.sum_s == 70.0
    assert histograms["run"] == {}


def test_histogram_buckets_are_cumulative() -> None:
    counts = [1] * len(BOUNDS_S)
    histogram = Histogram.from_counts(counts, 0)
    assert [n for _, n in histogram.buckets] == list(range(1, len(BOUNDS_S) + 1))


def test_openapi_document_declares_version_3_1_and_every_route() -> None:
    document = build_document(1024)
    assert document["openapi"] == "3.1.0"
    assert {"/jobs", "/jobs/batch", "/jobs/{job_id}", "/queues/{name}/failed/purge"} <= set(
        document["paths"]
    )


def deep(levels: int) -> Any:
    return [deep(levels - 1)] if levels else 0


@pytest.mark.parametrize(
    ("job", "field"),
    [
        ({"type": "a", "payload": "\ud800"}, "jobs[1].payload"),
        ({"type": "a", "payload": [[[[]]]] * 2 + [deep(MAX_NESTING + 1)]}, "jobs[1].payload"),
        ({"type": "a", "delay": 10**400}, "jobs[1].delay"),
        ({"type": "a", "timeout": 10**400}, "jobs[1].timeout"),
        ({"type": "a", "run_at": "9999-12-31T23:59:59.9999Z"}, "jobs[1].run_at"),
    ],
)
def test_batch_names_the_job_whose_value_cannot_be_stored(job: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiError) as excinfo:
        validation.batch_specs({"jobs": [{"type": "a"}, job]})
    assert code_of(excinfo) == (400, "validation_error", field)


def test_a_cursor_offset_no_millisecond_holds_is_rejected() -> None:
    # Redis skips `offset` index entries for each page (O(offset)): a forged offset of
    # millions would make one request walk the whole index.
    with pytest.raises(ApiError) as excinfo:
        validation.cursor(request(query="cursor=1764000000000-100000"))
    assert code_of(excinfo) == (400, "validation_error", "cursor")
    assert validation.cursor(request(query="cursor=1764000000000-99999")) == "1764000000000-99999"
