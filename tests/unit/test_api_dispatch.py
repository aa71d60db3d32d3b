"""The API's waitress settings (api.dispatch): public adjustments, poll(), descriptor budget."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest
from waitress.adjustments import Adjustments

from workstream.api.dispatch import (
    CONNECTION_LIMIT,
    FD_RESERVE,
    adjustments,
    connection_limit,
    raise_open_files_limit,
)
from workstream.common.settings import Settings


@pytest.fixture
def restored_open_files() -> Iterator[tuple[int, int]]:
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield limits
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def test_waitress_polls_with_poll_and_gets_only_public_adjustments() -> None:
    given = adjustments(Settings.from_environ({}), connections=100)
    assert not [name for name in given if name.startswith("_")]
    assert Adjustments(**given).asyncore_use_poll is True  # select() fails past fd 1023


def test_the_connection_limit_leaves_descriptors_for_redis_and_the_rest() -> None:
    assert connection_limit(1024, redis_connections=264) == 1024 - 264 - FD_RESERVE


def test_the_connection_limit_is_capped_when_descriptors_are_plenty() -> None:
    assert connection_limit(1 << 20, redis_connections=264) == CONNECTION_LIMIT
    assert connection_limit(resource.RLIM_INFINITY, redis_connections=264) == CONNECTION_LIMIT


def test_the_connection_limit_stays_positive_under_a_tiny_open_files_limit() -> None:
    assert connection_limit(16, redis_connections=264) == 1


def test_the_soft_open_files_limit_is_raised_to_the_hard_limit(
    restored_open_files: tuple[int, int],
) -> None:
    soft, hard = restored_open_files
    if hard != resource.RLIM_INFINITY and hard < 2:
        pytest.skip("hard open-files limit too low to lower the soft one")
    lowered = min(soft, hard) // 2 if hard != resource.RLIM_INFINITY else 1024
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    raised = raise_open_files_limit()
    assert raised.before == lowered and raised.soft > lowered
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised.soft
