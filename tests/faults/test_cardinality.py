"""Full size of the cardinality regression (issue 15, finding 8): 20,000 one-job queues, run,
emptied and deleted, leave no names or counters and a small, fast /metrics."""

from __future__ import annotations

import pytest
import redis

from tests.integration.test_cardinality import capped_store, one_job_queues_used_and_deleted
from workstream.common.settings import Settings


@pytest.mark.chaos
@pytest.mark.timeout(600)
def test_twenty_thousand_queues_used_and_deleted_leave_no_names_or_counters(
    redis_client: redis.Redis, settings: Settings
) -> None:
    store = capped_store(redis_client, settings, MAX_QUEUES="20000", MAX_TYPES="20000")
    one_job_queues_used_and_deleted(store, redis_client, 20_000)
