"""/metrics: Prometheus text by default, JSON on request; global figures from Redis."""

from __future__ import annotations

import falcon.testing
from prometheus_client.parser import text_string_to_metric_families

from tests.integration import api_fixtures
from tests.integration.api_fixtures import make_completed, make_failed, submit
from workstream.common.metrics import COUNTERS, JSON_ALIASES
from workstream.common.store import JobStore

# The shared API fixtures, bound here so that pytest finds them for this module.
app = api_fixtures.app
client = api_fixtures.client

TestClient = falcon.testing.TestClient


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def seed(store: JobStore) -> None:
    submit(store, type="mail", queue="q1")
    make_completed(store)
    make_failed(store)
    cancelled = submit(store, delay=60)
    store.cancel(cancelled)
    store.heartbeat("w-1", "h", 1, ["default"], 4, 1)


def test_metrics_default_to_prometheus_text(client: TestClient, store: JobStore) -> None:
    seed(store)
    resp = client.simulate_get("/metrics")
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    found = samples(resp.text)
    assert found[("workstream_jobs_created_total", (("queue", "q1"), ("type", "mail")))] == 1
    assert found[("workstream_jobs_created_total", (("queue", "default"), ("type", "echo")))] == 3
    assert found[("workstream_jobs_completed_total", (("queue", "default"), ("type", "echo")))] == 1
    assert found[("workstream_jobs_failed_total", (("queue", "default"), ("type", "echo")))] == 1
    assert found[("workstream_jobs_cancelled_total", (("queue", "default"), ("type", "echo")))] == 1
    assert found[("workstream_queue_pending", (("queue", "q1"),))] == 1
    assert found[("workstream_queue_failed", (("queue", "default"),))] == 1
    assert found[("workstream_queue_paused", (("queue", "q1"),))] == 0
    assert found[("workstream_workers_live", ())] == 1
    assert found[("workstream_stale_completions_total", ())] == 0


def test_metrics_have_no_outbox_figures_without_queue_shards(
    client: TestClient, store: JobStore
) -> None:
    seed(store)
    assert "workstream_outbox" not in client.simulate_get("/metrics").text
    figures = client.simulate_get("/metrics", headers={"Accept": "application/json"}).json
    assert "outbox" not in figures


def test_metrics_histograms_are_cumulative_with_inf_bucket(
    client: TestClient, store: JobStore
) -> None:
    make_completed(store)
    make_completed(store)
    found = samples(client.simulate_get("/metrics").text)
    inf = ("workstream_job_run_seconds_bucket", (("le", "+Inf"), ("queue", "default")))
    assert found[inf] == 2
    assert found[("workstream_job_run_seconds_count", (("queue", "default"),))] == 2
    assert ("workstream_job_wait_seconds_sum", (("queue", "default"),)) in found
    buckets = [
        v for (name, labels), v in found.items() if name == "workstream_job_run_seconds_bucket"
    ]
    assert max(buckets) == 2


def test_metrics_json_keeps_the_original_keys_beside_queue_depths(
    client: TestClient, store: JobStore
) -> None:
    seed(store)
    resp = client.simulate_get("/metrics", headers={"Accept": "application/json"})
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json
    assert {
        k: body[k]
        for k in (
            "total_jobs_created",
            "jobs_completed",
            "jobs_failed",
            "jobs_retried",
            "jobs_cancelled",
            "jobs_in_progress",
            "workers_live",
        )
    } == {
        "total_jobs_created": 4,
        "jobs_completed": 1,
        "jobs_failed": 1,
        "jobs_retried": 0,
        "jobs_cancelled": 1,
        "jobs_in_progress": 0,
        "workers_live": 1,
    }
    assert body["queues"]["q1"] == {
        "pending": 1,
        "processing": 0,
        "scheduled": 0,
        "failed": 0,
        "waiting": 0,
        "paused": False,
    }


def test_metrics_json_histograms_have_cumulative_buckets(
    client: TestClient, store: JobStore
) -> None:
    make_completed(store)
    body = client.simulate_get("/metrics", headers={"Accept": "application/json"}).json
    run = body["histograms"]["run_seconds"]
    counts = [n for _, n in run["buckets"]]
    assert counts == sorted(counts) and run["buckets"][-1] == ["+Inf", 1] and run["count"] == 1


def test_metrics_are_global_not_per_app(
    client: TestClient, store: JobStore, settings: object
) -> None:
    from workstream.api.app import create_app

    submit(store)
    other = TestClient(create_app(store.settings, store))
    assert (
        other.simulate_get("/metrics", headers={"Accept": "application/json"}).json[
            "total_jobs_created"
        ]
        == 1
    )


def test_openapi_json_is_served(client: TestClient) -> None:
    resp = client.simulate_get("/openapi.json")
    assert resp.status_code == 200 and resp.json["openapi"] == "3.1.0"


def test_metrics_json_names_are_the_prometheus_names_less_the_prefix_summed_over_labels(
    client: TestClient, store: JobStore
) -> None:
    seed(store)
    make_completed(store)
    text = client.simulate_get("/metrics").text
    body = client.simulate_get("/metrics", headers={"Accept": "application/json"}).json
    totals: dict[str, float] = {}
    for (name, _), value in samples(text).items():
        totals[name] = totals.get(name, 0) + value
    scalars = {k: v for k, v in body.items() if isinstance(v, int) and k not in JSON_ALIASES}

    assert set(scalars) == {
        *(f"jobs_{c}_total" for c in COUNTERS),
        "stale_completions_total",
        "queue_pending",
        "queue_processing",
        "queue_scheduled",
        "queue_failed",
        "queue_waiting",
        "workers_live",
    }
    families = {
        f.name + ("_total" if f.type == "counter" else "")
        for f in text_string_to_metric_families(text)
    }
    assert {f"workstream_{k}" for k in scalars} <= families
    assert {k: totals.get(f"workstream_{k}", 0) for k in scalars} == scalars
    for name in ("job_wait_seconds", "job_run_seconds"):
        assert body[name]["count"] == totals[f"workstream_{name}_count"]
    assert body["jobs_completed_total"] == 2 and body["queue_failed"] == 1


def test_metrics_json_keeps_each_old_name_as_an_alias_of_its_new_name(
    client: TestClient, store: JobStore
) -> None:
    seed(store)
    body = client.simulate_get("/metrics", headers={"Accept": "application/json"}).json

    assert {alias: body[alias] for alias in JSON_ALIASES} == {
        alias: body[name] for alias, name in JSON_ALIASES.items()
    }
    assert body["total_jobs_created"] == body["jobs_created_total"] == 4
    assert body["histograms"] == {
        "wait_seconds": body["job_wait_seconds"],
        "run_seconds": body["job_run_seconds"],
    }
