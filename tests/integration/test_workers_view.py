"""/workers' slots_busy: the worker's processing list read at request time (the contract)."""

from __future__ import annotations

import falcon.testing

from tests.integration import api_fixtures
from tests.integration.api_fixtures import submit
from workstream.common.store import JobStore

app = api_fixtures.app
client = api_fixtures.client


def test_slots_busy_counts_every_job_the_worker_holds_those_claimed_ahead_included(
    client: falcon.testing.TestClient, store: JobStore
) -> None:
    store.heartbeat("w-1", "h", 1, ["default"], 2, 0, ["echo"])
    for _ in range(4):
        submit(store)
    assert len(store.claim("w-1", 4, ["default"])) == 4  # two running, two held ahead
    (worker,) = client.simulate_get("/workers").json["workers"]
    assert (worker["slots_busy"], worker["slots_total"]) == (4, 2)
