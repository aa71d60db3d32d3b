"""Every error answers one JSON shape and bad input changes nothing; auth, request ids, logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import falcon.testing
import pytest
import redis

from tests.integration import api_fixtures
from tests.support.redis_server import free_port
from workstream.api.app import create_app
from workstream.common.logs import JsonFormatter
from workstream.common.redis_conn import connect
from workstream.common.settings import Settings
from workstream.common.store import JobStore

# The shared API fixtures, bound here so that pytest finds them for this module.
app = api_fixtures.app
client = api_fixtures.client
make_client = api_fixtures.make_client

TestClient = falcon.testing.TestClient
MakeClient = Callable[..., TestClient]
JSON = {"Content-Type": "application/json"}


def assert_error(resp: falcon.testing.Result, status: int, code: str) -> None:
    assert resp.status_code == status
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json["error"]["code"] == code
    assert isinstance(resp.json["error"]["message"], str) and resp.json["error"]["message"]


def test_malformed_json_answers_invalid_json_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    assert_error(client.simulate_post("/jobs", body='{"type": ', headers=JSON), 400, "invalid_json")
    assert redis_client.dbsize() == 0


def test_wrong_content_type_answers_415_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    resp = client.simulate_post("/jobs", body='{"type": "echo"}', content_type="text/plain")
    assert_error(resp, 415, "unsupported_media_type")
    assert redis_client.dbsize() == 0


def test_body_over_the_limit_answers_413_and_writes_nothing(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(MAX_PAYLOAD_BYTES="100")
    body = json.dumps({"type": "echo", "payload": "x" * 200})
    assert_error(client.simulate_post("/jobs", body=body, headers=JSON), 413, "payload_too_large")
    assert redis_client.dbsize() == 0


def test_batch_body_over_the_limit_answers_413(make_client: MakeClient) -> None:
    client = make_client(MAX_PAYLOAD_BYTES="100")
    body = json.dumps({"jobs": [{"type": "echo"}] * 20})
    resp = client.simulate_post("/jobs/batch", body=body, headers=JSON)
    assert_error(resp, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "echo", "colour": "red"}, "colour"),
        ({"payload": {}}, "type"),
        ({"type": 7}, "type"),
        ({"type": "has space"}, "type"),
        ({"type": "x" * 129}, "type"),
        ({"type": "echo", "queue": "bad/queue"}, "queue"),
        ({"type": "echo", "queue": "q" * 65}, "queue"),
        ({"type": "echo", "max_attempts": "3"}, "max_attempts"),
        ({"type": "echo", "max_attempts": 0}, "max_attempts"),
        ({"type": "echo", "timeout": True}, "timeout"),
        ({"type": "echo", "delay": -1}, "delay"),
        ({"type": "echo", "run_at": "tomorrow"}, "run_at"),
        ({"type": "echo", "run_at": "2999-01-01T00:00:00"}, "run_at"),
        ({"type": "echo", "delay": 1, "run_at": "2999-01-01T00:00:00Z"}, "run_at"),
        ({"type": "echo", "idempotency_key": "has space"}, "idempotency_key"),
        ({"type": "echo", "idempotency_key": 5}, "idempotency_key"),
        ([{"type": "echo"}], "body"),
    ],
)
def test_invalid_submission_names_the_field_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis, body: object, field: str
) -> None:
    resp = client.simulate_post("/jobs", json=body)
    assert_error(resp, 400, "validation_error")
    assert resp.json["error"]["field"] == field and field in resp.json["error"]["message"]
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize(
    "raw_payload",
    [
        '{"text": "\\ud800"}',  # a lone surrogate: not text Redis can store as UTF-8
        '{"big": 1e400}',  # parses as infinity, which JSON cannot write back
    ],
)
def test_a_payload_json_cannot_store_answers_400_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis, raw_payload: str
) -> None:
    body = '{"type": "echo", "payload": ' + raw_payload + "}"
    resp = client.simulate_post("/jobs", body=body, headers=JSON)
    assert_error(resp, 400, "validation_error")
    assert resp.json["error"]["field"] == "payload"
    assert redis_client.dbsize() == 0


def test_an_unknown_field_named_by_a_lone_surrogate_is_named_in_a_json_error(
    client: TestClient, redis_client: redis.Redis
) -> None:
    resp = client.simulate_post("/jobs", body='{"type": "echo", "\\ud800": 1}', headers=JSON)
    assert_error(resp, 400, "validation_error")
    assert resp.json["error"]["field"] == "\ud800"
    assert redis_client.dbsize() == 0


def test_a_payload_integer_beyond_64_bits_comes_back_exactly(client: TestClient) -> None:
    body = '{"type": "echo", "payload": {"id": 123456789012345678901234567890, "x": null}}'
    job = client.simulate_post("/jobs", body=body, headers=JSON).json
    assert job["payload"] == {"id": 123456789012345678901234567890, "x": None}
    stored = client.simulate_get(f"/jobs/{job['id']}").json
    assert stored["payload"] == job["payload"]


def test_unknown_route_answers_not_found(client: TestClient) -> None:
    assert_error(client.simulate_get("/nowhere"), 404, "not_found")


def test_wrong_method_answers_method_not_allowed(client: TestClient) -> None:
    resp = client.simulate_put("/jobs")
    assert_error(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]


def test_legacy_job_route_accepts_only_post(client: TestClient) -> None:
    assert_error(client.simulate_get("/job"), 405, "method_not_allowed")


def down_client() -> TestClient:
    """An app whose store points at a closed port, connected as workstream-api connects."""
    settings = Settings.from_environ({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    return TestClient(create_app(settings, JobStore(connect(settings), settings)))


def test_redis_down_answers_503_redis_unavailable_with_retry_after() -> None:
    client = down_client()
    for resp in (
        client.simulate_post("/jobs", json={"type": "echo"}),
        client.simulate_get("/jobs/" + "0" * 32),
        client.simulate_get("/queues"),
        client.simulate_get("/metrics"),
    ):
        assert_error(resp, 503, "redis_unavailable")
        assert int(resp.headers["Retry-After"]) >= 1
        assert "Traceback" not in resp.text


def test_health_answers_503_degraded_when_redis_is_down() -> None:
    resp = down_client().simulate_get("/health")
    assert resp.status_code == 503
    assert resp.json == {"status": "degraded", "redis": "unavailable"}


def test_health_answers_ok_when_redis_answers(client: TestClient) -> None:
    resp = client.simulate_get("/health")
    assert resp.status_code == 200 and resp.json == {"status": "ok", "redis": "ok"}


def test_unexpected_exception_answers_500_and_logs_the_traceback_as_json(
    client: TestClient,
    store: JobStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(store, "queue_infos", explode)
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        resp = client.simulate_get("/queues")
    assert_error(resp, 500, "internal_error")
    assert "kaboom" not in resp.text
    (record,) = [r for r in caplog.records if r.getMessage() == "http.unhandled_error"]
    assert record.exc_info is not None


def test_auth_rejects_a_request_without_a_token(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(API_TOKEN="s3cret,other")
    resp = client.simulate_post("/jobs", json={"type": "echo"})
    assert_error(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert redis_client.dbsize() == 0


def test_auth_rejects_a_wrong_token(make_client: MakeClient) -> None:
    client = make_client(API_TOKEN="s3cret")
    resp = client.simulate_get("/jobs", headers={"Authorization": "Bearer nope"})
    assert_error(resp, 401, "unauthorized")


@pytest.mark.parametrize("token", ["s3cret", "other"])
def test_auth_accepts_any_configured_token(make_client: MakeClient, token: str) -> None:
    client = make_client(API_TOKEN="s3cret,other")
    resp = client.simulate_get("/queues", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200


@pytest.mark.parametrize("path", ["/metrics", "/workers", "/openapi.json", "/nowhere"])
def test_auth_covers_every_endpoint_but_health_and_ui(make_client: MakeClient, path: str) -> None:
    client = make_client(API_TOKEN="s3cret")
    assert_error(client.simulate_get(path), 401, "unauthorized")


@pytest.mark.parametrize("path", ["/health", "/ui", "/ui/static/app.js"])
def test_health_and_ui_files_need_no_token(make_client: MakeClient, path: str) -> None:
    assert make_client(API_TOKEN="s3cret").simulate_get(path).status_code == 200


def test_auth_disabled_is_logged_at_start(
    settings: Settings, store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="api.app"):
        create_app(settings, store)
    assert "api.auth_disabled" in [r.getMessage() for r in caplog.records]


def test_a_well_formed_request_id_is_echoed(client: TestClient) -> None:
    resp = client.simulate_get("/health", headers={"X-Request-ID": "abc.123_x-y"})
    assert resp.headers["X-Request-ID"] == "abc.123_x-y"


def test_a_malformed_request_id_is_replaced(client: TestClient) -> None:
    resp = client.simulate_get("/health", headers={"X-Request-ID": "bad id!"})
    assert resp.headers["X-Request-ID"] != "bad id!" and len(resp.headers["X-Request-ID"]) == 16


def test_each_request_is_logged_as_one_json_line_with_its_request_id(client: TestClient) -> None:
    formatter = JsonFormatter()
    lines: list[dict[str, object]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(formatter.format(record)))

    logger = logging.getLogger("api.access")
    handler, level = Capture(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        client.simulate_get("/nowhere", headers={"X-Request-ID": "req-1"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    (line,) = [line for line in lines if line["event"] == "http.request"]
    assert (line["method"], line["path"], line["status"]) == ("GET", "/nowhere", 404)
    assert line["request_id"] == "req-1" and isinstance(line["duration_ms"], float)
