"""POST /jobs and /jobs/batch refuse an `http` job whose URL cannot be sent, writing nothing."""

from __future__ import annotations

import falcon.testing
import redis

from tests.integration import api_fixtures

app = api_fixtures.app
client = api_fixtures.client

TestClient = falcon.testing.TestClient


def test_a_malformed_url_answers_400_invalid_url_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    body = {"type": "http", "payload": {"url": "file:///etc/passwd"}}
    resp = client.simulate_post("/jobs", json=body)
    assert resp.status_code == 400
    error = resp.json["error"]
    assert (error["code"], error["field"]) == ("invalid_url", "payload.url")
    assert "only http and https" in error["message"]
    assert list(redis_client.scan_iter(match="ws:*job:*")) == []


def test_a_batch_names_the_http_job_with_the_bad_url(client: TestClient) -> None:
    jobs = [
        {"type": "http", "payload": {"url": "https://example.com/hook"}},
        {"type": "http", "payload": {"url": "http://user:pw@example.com/"}},
    ]
    resp = client.simulate_post("/jobs/batch", json={"jobs": jobs})
    assert resp.status_code == 400
    assert resp.json["error"]["field"] == "jobs[1].payload.url"


def test_a_well_formed_http_job_is_accepted(client: TestClient) -> None:
    body = {"type": "http", "payload": {"url": "https://example.com/hook", "body": {"a": 1}}}
    assert client.simulate_post("/jobs", json=body).status_code == 201


def test_a_literal_forbidden_address_answers_400_target_forbidden_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    body = {"type": "http", "payload": {"url": "http://169.254.169.254/latest/meta-data/"}}
    resp = client.simulate_post("/jobs", json=body)
    assert resp.status_code == 400 and resp.json["error"]["code"] == "target_forbidden"
    assert list(redis_client.scan_iter(match="ws:*job:*")) == []


def test_a_batch_with_a_forbidden_address_names_it_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    jobs = [{"type": "echo"}, {"type": "http", "payload": {"url": "http://10.0.0.1/"}}]
    resp = client.simulate_post("/jobs/batch", json={"jobs": jobs})
    assert resp.status_code == 400 and resp.json["error"]["code"] == "target_forbidden"
    assert resp.json["error"]["field"] == "jobs[1].payload.url"
    assert list(redis_client.scan_iter(match="ws:*job:*")) == []
