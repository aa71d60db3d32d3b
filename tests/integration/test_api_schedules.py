"""/schedules over the API: each endpoint and its 4xx; a refused request writes nothing."""

from __future__ import annotations

from typing import Any, cast

import falcon.testing
import pytest
import redis

from tests.integration import api_fixtures

app = api_fixtures.app
client = api_fixtures.client
make_client = api_fixtures.make_client

TestClient = falcon.testing.TestClient

BODY: dict[str, Any] = {
    "cron": "*/5 * * * *",
    "timezone": "Europe/Berlin",
    "job": {"type": "report", "payload": {"to": "ops"}, "queue": "mail", "max_attempts": 2},
}


def _schedule_keys(redis_client: redis.Redis) -> list[str]:
    return sorted(cast(list[str], redis_client.keys("*schedule*")))


def test_put_creates_a_schedule_201_with_location_and_its_next_run(client: TestClient) -> None:
    resp = client.simulate_put("/schedules/nightly-report", json=BODY)

    assert resp.status_code == 201
    assert resp.headers["location"] == "/schedules/nightly-report"
    body = resp.json
    assert body["id"] == "nightly-report" and body["cron"] == "*/5 * * * *"
    assert body["timezone"] == "Europe/Berlin" and body["missed"] == "run_once"
    assert body["job"] == {**BODY["job"]}
    assert body["paused"] is False and body["next_run_at"].endswith("Z")
    assert (body["last_run_at"], body["last_job_id"]) == (None, None)


def test_put_again_replaces_it_200(client: TestClient) -> None:
    client.simulate_put("/schedules/s1", json=BODY)

    resp = client.simulate_put("/schedules/s1", json={"every": "30s", "job": {"type": "ping"}})

    assert resp.status_code == 200
    assert resp.json["every"] == "30s" and "cron" not in resp.json
    assert resp.json["job"] == {"type": "ping", "payload": None, "queue": "default"}


def test_get_one_and_list_all(client: TestClient) -> None:
    client.simulate_put("/schedules/b", json=BODY)
    client.simulate_put("/schedules/a", json={"every": "1m", "job": {"type": "ping"}})

    assert client.simulate_get("/schedules/a").json["every"] == "1m"
    listed = client.simulate_get("/schedules").json["schedules"]
    assert [s["id"] for s in listed] == ["a", "b"]


def test_unknown_schedule_answers_404_schedule_not_found(client: TestClient) -> None:
    for resp in (
        client.simulate_get("/schedules/nope"),
        client.simulate_delete("/schedules/nope"),
        client.simulate_post("/schedules/nope/pause"),
        client.simulate_post("/schedules/nope/resume"),
    ):
        assert resp.status_code == 404
        assert resp.json["error"]["code"] == "schedule_not_found"


def test_delete_answers_204_and_removes_it(client: TestClient, redis_client: redis.Redis) -> None:
    client.simulate_put("/schedules/s1", json=BODY)

    assert client.simulate_delete("/schedules/s1").status_code == 204
    assert client.simulate_get("/schedules/s1").status_code == 404
    assert _schedule_keys(redis_client) == []


def test_pause_and_resume(client: TestClient) -> None:
    client.simulate_put("/schedules/s1", json=BODY)

    paused = client.simulate_post("/schedules/s1/pause")
    assert paused.status_code == 200
    assert paused.json["paused"] is True and paused.json["next_run_at"] is None
    resumed = client.simulate_post("/schedules/s1/resume")
    assert resumed.json["paused"] is False and resumed.json["next_run_at"] is not None


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({**BODY, "cron": "61 * * * *"}, "invalid_cron", "cron"),
        ({**BODY, "cron": "* * *"}, "invalid_cron", "cron"),
        ({**BODY, "cron": "0 0 30 2 *"}, "invalid_cron", "cron"),
        ({**BODY, "timezone": "Mars/Olympus"}, "unknown_timezone", "timezone"),
        ({**BODY, "timezone": "../../etc/passwd"}, "unknown_timezone", "timezone"),
        ({"every": "500ms", "job": {"type": "x"}}, "invalid_every", "every"),
        ({"every": "soon", "job": {"type": "x"}}, "invalid_every", "every"),
        ({"every": "1s", "cron": "* * * * *", "job": {"type": "x"}}, "validation_error", "cron"),
        ({"job": {"type": "x"}}, "validation_error", "cron"),
        ({"every": "1s", "job": {"type": "x"}, "missed": "all"}, "invalid_missed_policy", "missed"),
        ({"every": "1s", "job": {"type": "bad type"}}, "validation_error", "job.type"),
        ({"every": "1s", "job": {"type": "x", "max_attempts": 0}}, "validation_error",
         "job.max_attempts"),
        ({"every": "1s", "job": {"type": "x", "delay": 5}}, "validation_error", "job.delay"),
        ({"every": "1s", "job": {"type": "x", "expires_in": 5}}, "validation_error",
         "job.expires_in"),
        ({"every": "1s", "job": {"type": "x", "unique": {"key": "k", "ttl": 5}}},
         "validation_error", "job.unique"),
        ({"every": "1s", "job": {"type": "x", "colour": 1}}, "validation_error", "job.colour"),
        ({"every": "1s"}, "validation_error", "job"),
        ({"every": "1s", "job": {"type": "x"}, "paused": "yes"}, "validation_error", "paused"),
        ({"every": "1s", "job": {"type": "x"}, "owner": "me"}, "validation_error", "owner"),
    ],
)  # fmt: skip
def test_bad_input_answers_400_with_a_stable_code_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis, body: dict[str, Any], code: str, field: str
) -> None:
    resp = client.simulate_put("/schedules/s1", json=body)

    assert resp.status_code == 400, resp.json
    assert resp.json["error"]["code"] == code
    assert resp.json["error"]["field"] == field
    assert _schedule_keys(redis_client) == []


def test_a_bad_id_answers_400_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    resp = client.simulate_put("/schedules/has%20space", json=BODY)

    assert resp.status_code == 400 and resp.json["error"]["field"] == "id"
    assert _schedule_keys(redis_client) == []


def test_a_bad_replacement_leaves_the_stored_schedule_alone(client: TestClient) -> None:
    before = client.simulate_put("/schedules/s1", json=BODY).json

    client.simulate_put("/schedules/s1", json={**BODY, "cron": "nope"})

    assert client.simulate_get("/schedules/s1").json == before


def test_past_max_schedules_answers_409_too_many_schedules(
    make_client: Any, redis_client: redis.Redis
) -> None:
    limited = make_client(MAX_SCHEDULES="1")
    limited.simulate_put("/schedules/a", json=BODY)

    resp = limited.simulate_put("/schedules/b", json=BODY)

    assert resp.status_code == 409
    assert resp.json["error"]["code"] == "too_many_schedules"
    assert not redis_client.exists("ws:{default}:schedule:b")


def test_not_json_answers_the_usual_errors(client: TestClient) -> None:
    resp = client.simulate_put("/schedules/s1", body="{", headers={"Content-Type": "text/plain"})

    assert resp.status_code == 415
