"""/jobs, /jobs/batch, /jobs/{id} and the seed aliases, through falcon's TestClient."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import falcon.testing
import pytest
import redis

from tests.integration import api_fixtures
from tests.integration.api_fixtures import (
    make_completed,
    make_failed,
    submit,
)
from workstream.common.jobs import is_job_id
from workstream.common.serialization import ms_to_rfc3339
from workstream.common.store import JobStore

# The shared API fixtures, bound here so that pytest finds them for this module.
app = api_fixtures.app
client = api_fixtures.client
make_client = api_fixtures.make_client

TestClient = falcon.testing.TestClient
MakeClient = Callable[..., TestClient]


def job_keys(redis_client: redis.Redis) -> list[str]:
    return [str(k) for k in redis_client.scan_iter(match="ws:*job:*")]


def test_post_jobs_answers_201_with_the_job_and_location(client: TestClient) -> None:
    resp = client.simulate_post("/jobs", json={"type": "echo", "payload": {"n": 1}})
    assert resp.status_code == 201
    job = resp.json
    assert is_job_id(job["id"]) and job["status"] == "pending" and job["payload"] == {"n": 1}
    assert resp.headers["Location"] == f"/jobs/{job['id']}"


def test_post_jobs_applies_every_field(client: TestClient) -> None:
    body = {"type": "mail", "queue": "q1", "max_attempts": 5, "timeout": 2.5, "payload": [1]}
    job = client.simulate_post("/jobs", json=body).json
    assert (job["queue"], job["max_attempts"], job["timeout"]) == ("q1", 5, 2.5)


def test_post_jobs_with_delay_is_scheduled(client: TestClient) -> None:
    job = client.simulate_post("/jobs", json={"type": "echo", "delay": 60}).json
    assert job["status"] == "scheduled" and job["run_at"] is not None


def test_post_jobs_with_run_at_in_the_future_is_scheduled(client: TestClient) -> None:
    run_at = ms_to_rfc3339(round((time.time() + 86400) * 1000))
    job = client.simulate_post("/jobs", json={"type": "echo", "run_at": run_at}).json
    assert job["status"] == "scheduled" and job["run_at"] == run_at


def test_post_jobs_with_run_at_in_the_past_is_pending(client: TestClient) -> None:
    body = {"type": "echo", "run_at": "1969-12-31T23:59:59.999Z"}  # -1 ms: the script's "none"
    job = client.simulate_post("/jobs", json=body).json
    assert job["status"] == "pending" and job["run_at"] is None


def test_repeated_idempotency_key_answers_200_with_the_original_job(
    client: TestClient, redis_client: redis.Redis
) -> None:
    body = {"type": "echo", "idempotency_key": "order-42"}
    first = client.simulate_post("/jobs", json=body)
    again = client.simulate_post("/jobs", json=body)  # another key use: test_idempotency_api
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"] and "Location" not in again.headers
    assert len(job_keys(redis_client)) == 1


def test_full_queue_answers_429_with_retry_after_and_writes_nothing(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(JOB_QUEUE_CAPACITY="1")
    assert client.simulate_post("/jobs", json={"type": "echo"}).status_code == 201
    before = redis_client.dbsize()
    resp = client.simulate_post("/jobs", json={"type": "echo"})
    assert resp.status_code == 429 and resp.json["error"]["code"] == "queue_full"
    assert int(resp.headers["Retry-After"]) >= 1
    assert redis_client.dbsize() == before and len(job_keys(redis_client)) == 1


def test_legacy_post_job_submits_like_post_jobs(client: TestClient) -> None:
    resp = client.simulate_post("/job", json={"type": "echo"})
    assert resp.status_code == 201 and resp.json["status"] == "pending"


def test_batch_answers_201_with_each_id_and_status_in_order(client: TestClient) -> None:
    jobs = [{"type": "echo"}, {"type": "echo", "delay": 30}]
    resp = client.simulate_post("/jobs/batch", json={"jobs": jobs})
    assert resp.status_code == 201
    answered = resp.json["jobs"]
    assert [j["status"] for j in answered] == ["pending", "scheduled"]
    assert all(is_job_id(j["id"]) and j["created"] for j in answered)


def test_batch_of_1000_jobs_is_enqueued(client: TestClient, store: JobStore) -> None:
    resp = client.simulate_post("/jobs/batch", json={"jobs": [{"type": "echo"}] * 1000})
    assert resp.status_code == 201 and len(resp.json["jobs"]) == 1000
    assert store.queue_info("default").pending == 1000


def test_batch_with_one_bad_job_names_it_and_writes_nothing(
    client: TestClient, redis_client: redis.Redis
) -> None:
    jobs = [{"type": "echo"}] * 3 + [{"type": "bad type!"}]
    resp = client.simulate_post("/jobs/batch", json={"jobs": jobs})
    assert resp.status_code == 400
    assert resp.json["error"]["field"] == "jobs[3].type"
    assert "jobs[3].type" in resp.json["error"]["message"]
    assert redis_client.dbsize() == 0


def test_get_job_answers_the_job(client: TestClient, store: JobStore) -> None:
    job_id = submit(store, payload={"a": 1})
    job = client.simulate_get(f"/jobs/{job_id}").json
    assert job["id"] == job_id and job["payload"] == {"a": 1}


def test_get_unknown_job_answers_404_job_not_found(client: TestClient) -> None:
    resp = client.simulate_get("/jobs/" + "0" * 32)
    assert resp.status_code == 404 and resp.json["error"]["code"] == "job_not_found"


def test_get_job_with_an_id_that_is_not_an_id_answers_404(client: TestClient) -> None:
    resp = client.simulate_get("/jobs/not-an-id")
    assert resp.status_code == 404 and resp.json["error"]["code"] == "job_not_found"


def test_get_job_with_wait_returns_when_the_job_finishes(
    client: TestClient, store: JobStore
) -> None:
    job_id = submit(store)

    def finish() -> None:
        time.sleep(0.3)
        (claimed,) = store.claim("w1", 1, ["default"])
        store.complete("w1", claimed, '"done"')

    worker = threading.Thread(target=finish)
    started = time.monotonic()
    worker.start()
    job = client.simulate_get(f"/jobs/{job_id}", params={"wait": "10"}).json
    worker.join()
    assert job["status"] == "completed" and job["result"] == "done"
    assert time.monotonic() - started < 3


def test_get_job_with_wait_answers_the_current_state_after_the_wait(
    client: TestClient, store: JobStore
) -> None:
    job_id = submit(store)
    started = time.monotonic()
    job = client.simulate_get(f"/jobs/{job_id}", params={"wait": "0.3"}).json
    assert job["status"] == "pending" and 0.25 <= time.monotonic() - started < 2


def test_get_job_with_wait_on_a_terminal_job_answers_at_once(
    client: TestClient, store: JobStore
) -> None:
    job_id = make_completed(store)
    started = time.monotonic()
    assert client.simulate_get(f"/jobs/{job_id}", params={"wait": "30"}).status_code == 200
    assert time.monotonic() - started < 1


def test_waiters_beyond_the_cap_answer_at_once(make_client: MakeClient, store: JobStore) -> None:
    client = make_client(API_THREADS="17")  # waiter cap = 17 - 16 = 1
    job_id = submit(store)
    holder = threading.Thread(
        target=client.simulate_get, args=(f"/jobs/{job_id}",), kwargs={"params": {"wait": "2"}}
    )
    holder.start()
    time.sleep(0.2)
    started = time.monotonic()
    resp = client.simulate_get(f"/jobs/{job_id}", params={"wait": "30"})
    elapsed = time.monotonic() - started
    holder.join()
    assert resp.json["status"] == "pending" and elapsed < 1


def test_get_job_with_wait_over_60_is_a_validation_error(
    client: TestClient, store: JobStore
) -> None:
    resp = client.simulate_get(f"/jobs/{submit(store)}", params={"wait": "61"})
    assert resp.status_code == 400 and resp.json["error"]["field"] == "wait"


def test_list_jobs_is_newest_first_with_a_cursor(client: TestClient, store: JobStore) -> None:
    ids = []
    for _ in range(5):
        ids.append(submit(store))
        time.sleep(0.002)
    first = client.simulate_get("/jobs", params={"limit": "3"}).json
    assert [j["id"] for j in first["jobs"]] == ids[::-1][:3]
    second = client.simulate_get("/jobs", params={"limit": "3", "cursor": first["next_cursor"]})
    assert [j["id"] for j in second.json["jobs"]] == ids[::-1][3:]


def test_list_jobs_filters_by_status_queue_and_type(client: TestClient, store: JobStore) -> None:
    wanted = submit(store, type="mail", queue="q1")
    submit(store, type="echo", queue="q1")
    submit(store, type="mail", queue="q2")
    params = {"status": "pending", "queue": "q1", "type": "mail"}
    jobs = client.simulate_get("/jobs", params=params).json["jobs"]
    assert [j["id"] for j in jobs] == [wanted]


def test_list_jobs_with_a_malformed_cursor_answers_400(client: TestClient) -> None:
    resp = client.simulate_get("/jobs", params={"cursor": "yesterday"})
    assert resp.status_code == 400 and resp.json["error"]["field"] == "cursor"


def test_list_jobs_with_a_limit_over_500_answers_400(client: TestClient) -> None:
    resp = client.simulate_get("/jobs", params={"limit": "501"})
    assert resp.status_code == 400 and resp.json["error"]["field"] == "limit"


def test_cancel_pending_job_answers_the_cancelled_job(client: TestClient, store: JobStore) -> None:
    job_id = submit(store)
    resp = client.simulate_post(f"/jobs/{job_id}/cancel")
    assert resp.status_code == 200 and resp.json["status"] == "cancelled"
    assert store.queue_info("default").pending == 0


def test_cancel_scheduled_job_answers_the_cancelled_job(
    client: TestClient, store: JobStore
) -> None:
    job_id = submit(store, delay=60)
    assert client.simulate_post(f"/jobs/{job_id}/cancel").json["status"] == "cancelled"


def test_cancel_finished_job_answers_409_invalid_transition(
    client: TestClient, store: JobStore
) -> None:
    resp = client.simulate_post(f"/jobs/{make_completed(store)}/cancel")
    assert resp.status_code == 409 and resp.json["error"]["code"] == "invalid_transition"


def test_cancel_unknown_job_answers_404(client: TestClient) -> None:
    resp = client.simulate_post("/jobs/" + "1" * 32 + "/cancel")
    assert resp.status_code == 404 and resp.json["error"]["code"] == "job_not_found"


def test_retry_failed_job_makes_it_pending_with_attempts_reset(
    client: TestClient, store: JobStore
) -> None:
    resp = client.simulate_post(f"/jobs/{make_failed(store)}/retry")
    assert resp.status_code == 200
    assert (resp.json["status"], resp.json["attempts"]) == ("pending", 0)


def test_retry_pending_job_answers_409(client: TestClient, store: JobStore) -> None:
    resp = client.simulate_post(f"/jobs/{submit(store)}/retry")
    assert resp.status_code == 409 and resp.json["error"]["code"] == "invalid_transition"


def test_delete_terminal_job_answers_204_and_removes_it(
    client: TestClient, store: JobStore
) -> None:
    job_id = make_completed(store)
    assert client.simulate_delete(f"/jobs/{job_id}").status_code == 204
    assert store.get_job(job_id) is None


def test_delete_pending_job_answers_409_and_keeps_it(client: TestClient, store: JobStore) -> None:
    job_id = submit(store)
    resp = client.simulate_delete(f"/jobs/{job_id}")
    assert resp.status_code == 409 and store.get_job(job_id) is not None


def test_legacy_status_answers_id_and_status(client: TestClient, store: JobStore) -> None:
    job_id = submit(store)
    assert client.simulate_get(f"/status/{job_id}").json == {"id": job_id, "status": "pending"}


def test_legacy_result_answers_409_not_finished_until_terminal(
    client: TestClient, store: JobStore
) -> None:
    resp = client.simulate_get(f"/result/{submit(store)}")
    assert resp.status_code == 409 and resp.json["error"]["code"] == "not_finished"


def test_legacy_result_answers_the_result_of_a_completed_job(
    client: TestClient, store: JobStore
) -> None:
    job_id = make_completed(store, '{"sum": 3}')
    assert client.simulate_get(f"/result/{job_id}").json == {
        "id": job_id,
        "status": "completed",
        "result": {"sum": 3},
        "error": None,
    }


def test_legacy_result_answers_the_error_of_a_failed_job(
    client: TestClient, store: JobStore
) -> None:
    body = client.simulate_get(f"/result/{make_failed(store)}").json
    assert (body["status"], body["error"], body["result"]) == ("failed", "boom", None)


@pytest.mark.parametrize("path", ["/status/nope", "/result/" + "2" * 32])
def test_legacy_reads_of_unknown_jobs_answer_404(client: TestClient, path: str) -> None:
    resp = client.simulate_get(path)
    assert resp.status_code == 404 and resp.json["error"]["code"] == "job_not_found"
