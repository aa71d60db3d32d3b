"""Dedicated connections survive a cut that happens while they are idle."""

from __future__ import annotations

import pytest
import redis

from workstream.common.jobs import JobSpec
from workstream.common.keys import Keys
from workstream.common.redis_conn import connect, reopen_if_dropped
from workstream.common.settings import Settings
from workstream.common.store import JobStore


def _cut(admin: redis.Redis, victim: redis.Redis) -> None:
    admin.client_kill_filter(_id=victim.client_id())


def test_a_connection_cut_while_idle_is_reopened_before_the_next_command(
    settings: Settings, redis_client: redis.Redis
) -> None:
    with connect(settings, dedicated=True) as client:
        _cut(redis_client, client)
        reopen_if_dropped(client)
        assert client.incr("counter") == 1


def test_without_the_check_the_first_command_after_a_cut_fails(
    settings: Settings, redis_client: redis.Redis
) -> None:
    with connect(settings, dedicated=True) as client:
        _cut(redis_client, client)
        with pytest.raises(redis.exceptions.ConnectionError):
            client.incr("counter")  # why the workers call reopen_if_dropped
    assert redis_client.get("counter") is None


def test_a_healthy_connection_is_kept(settings: Settings) -> None:
    with connect(settings, dedicated=True) as client:
        before = client.client_id()
        reopen_if_dropped(client)
        assert client.client_id() == before


def test_a_dedicated_client_reloads_scripts_that_redis_forgot(
    settings: Settings, redis_client: redis.Redis
) -> None:
    with connect(settings, dedicated=True) as client:
        store = JobStore(client, settings)
        store.enqueue(JobSpec(type="echo"))
        redis_client.script_flush()  # as after a Redis restart
        assert store.enqueue(JobSpec(type="echo")).created
    assert store.queue_info("default").pending == 2


def test_an_error_reply_on_a_dedicated_client_raises_and_leaves_it_usable(
    settings: Settings, redis_client: redis.Redis
) -> None:
    redis_client.set(Keys(settings.namespace).stats, "not a hash")
    with connect(settings, dedicated=True) as client:
        store = JobStore(client, settings)
        with pytest.raises(redis.exceptions.ResponseError):
            store.enqueue(JobSpec(type="echo"))
        redis_client.delete(Keys(settings.namespace).stats)
        assert store.enqueue(JobSpec(type="echo")).created
