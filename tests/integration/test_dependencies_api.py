"""depends_on and client ids over HTTP: 201 then 200 for the same request under one id, 409
id_conflict for another, 400s naming unknown parents and cycles with nothing written, and the
waiting status in every view (the job, its parent's children, the listing, the queue)."""

from __future__ import annotations

import falcon.testing
import redis

from tests.integration import api_fixtures
from workstream.common.store import JobStore

app = api_fixtures.app
client = api_fixtures.client

TestClient = falcon.testing.TestClient


def snapshot(redis_client: redis.Redis) -> dict[str, str]:
    return {str(k): str(redis_client.dump(k)) for k in redis_client.scan_iter()}


def batch(client: TestClient, *jobs: dict[str, object]) -> falcon.testing.Result:
    return client.simulate_post("/jobs/batch", json={"jobs": list(jobs)})


def test_a_client_id_replays_with_200_and_conflicts_with_409(client: TestClient) -> None:
    job = {"type": "echo", "id": "order-42", "payload": {"n": 1}}
    first = client.simulate_post("/jobs", json=job)
    again = client.simulate_post("/jobs", json=job)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json["id"] == again.json["id"] == "order-42"
    assert first.headers["location"] == "/jobs/order-42"
    other = client.simulate_post("/jobs", json={**job, "payload": {"n": 2}})
    assert other.status_code == 409
    assert other.json["error"]["code"] == "id_conflict"
    assert other.json["error"]["job_id"] == "order-42"
    assert client.simulate_get("/jobs/order-42").json["payload"] == {"n": 1}


def test_a_batch_id_conflict_names_the_entry_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    client.simulate_post("/jobs", json={"type": "echo", "id": "taken"})
    before = snapshot(redis_client)
    answer = batch(client, {"type": "echo", "id": "new"}, {"type": "other", "id": "taken"})
    assert answer.status_code == 409 and answer.json["error"]["field"] == "jobs[1].id"
    assert snapshot(redis_client) == before


def test_unknown_parents_answer_400_naming_them_and_write_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    client.simulate_post("/jobs", json={"type": "echo", "id": "known"})
    before = snapshot(redis_client)
    answer = batch(
        client,
        {"type": "echo", "id": "a", "depends_on": ["known", "nope-1"]},
        {"type": "echo", "depends_on": ["a", "nope-2"]},
    )
    assert answer.status_code == 400
    error = answer.json["error"]
    assert error["code"] == "unknown_parents" and error["ids"] == ["nope-1", "nope-2"]
    assert "nope-1" in error["message"]
    assert snapshot(redis_client) == before


def test_a_cycle_answers_400_naming_its_ids_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    before = snapshot(redis_client)
    answer = batch(
        client,
        {"type": "echo", "id": "a", "depends_on": ["b"]},
        {"type": "echo", "id": "b", "depends_on": ["a"]},
    )
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "dependency_cycle"
    assert sorted(answer.json["error"]["ids"]) == ["a", "b"]
    assert snapshot(redis_client) == before


def test_bad_depends_on_values_are_validation_errors(client: TestClient) -> None:
    for body in (
        {"type": "echo", "depends_on": "a"},
        {"type": "echo", "depends_on": []},
        {"type": "echo", "depends_on": ["a", "a"]},
        {"type": "echo", "depends_on": ["a b"]},
        {"type": "echo", "depends_on": [f"p{i}" for i in range(101)]},
        {"type": "echo", "depends_on": ["a"], "on_parent_failure": "ignore"},
        {"type": "echo", "on_parent_failure": "run"},
        {"type": "echo", "depends_on": ["a"], "delay": 5},
        {"type": "echo", "id": "x" * 129},
    ):
        answer = client.simulate_post("/jobs", json=body)
        assert answer.status_code == 400, body
        assert answer.json["error"]["code"] == "validation_error", body


def test_waiting_shows_in_the_job_its_parent_the_listing_and_the_queue(
    client: TestClient, store: JobStore
) -> None:
    answer = batch(
        client,
        {"type": "echo", "id": "parent"},
        {"type": "echo", "id": "child", "depends_on": ["parent"], "on_parent_failure": "run"},
    )
    assert [j["status"] for j in answer.json["jobs"]] == ["pending", "waiting"]
    child = client.simulate_get("/jobs/child").json
    assert child["status"] == "waiting" and child["depends_on"] == ["parent"]
    assert child["on_parent_failure"] == "run" and child["parents_left"] == 1
    parent = client.simulate_get("/jobs/parent").json
    assert parent["children"] == ["child"] and parent["children_count"] == 1
    listed = client.simulate_get("/jobs", params={"status": "waiting"}).json["jobs"]
    assert [j["id"] for j in listed] == ["child"]
    (queue,) = [q for q in client.simulate_get("/queues").json["queues"] if q["name"] == "default"]
    assert queue["waiting"] == 1 and queue["pending"] == 1


def test_a_waiting_job_can_be_cancelled(client: TestClient) -> None:
    batch(client, {"type": "echo", "id": "p"}, {"type": "echo", "id": "c", "depends_on": ["p"]})
    answer = client.simulate_post("/jobs/c/cancel")
    assert answer.status_code == 200 and answer.json["status"] == "cancelled"


def _lease(client: TestClient) -> dict[str, object]:
    body = {"queues": ["default"], "consumer": "c1", "lease_s": 30}
    (lease,) = client.simulate_post("/leases", json=body).json["leases"]
    return dict(lease)


def test_a_leased_child_carries_its_parents_results(client: TestClient) -> None:
    batch(
        client,
        {"type": "echo", "id": "p1"},
        {"type": "echo", "id": "p2"},
        {"type": "echo", "id": "join", "depends_on": ["p1", "p2"]},
    )
    for _ in range(2):
        lease = _lease(client)
        job = lease["job"]
        assert isinstance(job, dict) and lease["parent_results"] == {}
        done = client.simulate_post(
            f"/jobs/{job['id']}/complete",
            json={"lease": lease["lease"], "result": {"from": job["id"]}},
        )
        assert done.status_code == 200
    lease = _lease(client)
    assert lease["parent_results"] == {"p1": {"from": "p1"}, "p2": {"from": "p2"}}


def test_ctx_parent_results_reads_each_parents_result(store: JobStore) -> None:
    import logging

    from workstream.common.jobs import JobSpec
    from workstream.worker.registry import JobContext

    store.enqueue_many(
        [
            JobSpec.from_mapping({"type": "echo", "id": "a"}),
            JobSpec.from_mapping({"type": "echo", "id": "b"}),
            JobSpec.from_mapping(
                {"type": "echo", "id": "c", "depends_on": ["a", "b"], "on_parent_failure": "run"}
            ),
        ]
    )
    a, b = store.claim("w1", 2, ["default"])
    store.complete("w1", a, '{"n": 1}')
    store.fail("w1", b, "boom", permanent=True)
    ctx = JobContext(
        job_id="c", job_type="echo", queue="default", attempt=1, max_attempts=1,
        worker_id="w1", timeout_s=1.0, redis=store.redis, log=logging.getLogger("t"),
        keys=store.keys,
    )  # fmt: skip
    assert ctx.parent_results == {"a": {"n": 1}, "b": None}


def test_a_batch_sent_again_under_client_ids_creates_nothing_more(
    client: TestClient, redis_client: redis.Redis
) -> None:
    jobs = (
        {"type": "echo", "id": "r1"},
        {"type": "echo", "id": "r2", "depends_on": ["r1"]},
    )
    first = batch(client, *jobs)
    before = snapshot(redis_client)
    again = batch(client, *jobs)
    assert first.status_code == again.status_code == 201
    assert [j["created"] for j in first.json["jobs"]] == [True, True]
    assert [(j["id"], j["status"], j["created"]) for j in again.json["jobs"]] == [
        ("r1", "pending", False),
        ("r2", "waiting", False),
    ]
    assert {k: v for k, v in snapshot(redis_client).items() if ":events" not in k} == {
        k: v for k, v in before.items() if ":events" not in k
    }
