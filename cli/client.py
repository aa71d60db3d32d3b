"""The CLI's old client names, kept for `workstream.cli.dev` until it moves to
`workstream.client` (the one client; see workstream/client/__init__.py)."""

from __future__ import annotations

from workstream.client import Client as _Client
from workstream.client.calls import NO_RETRY
from workstream.client.errors import ApiError
from workstream.client.errors import TransportError as Unreachable
from workstream.client.models import Health

__all__ = ["ApiError", "Client", "Unreachable"]


class Client(_Client):
    """No retries (a caller that polls retries by itself), and health() raises when Redis is
    down, as the old client did for the 503."""

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 30.0) -> None:
        super().__init__(base_url, token=token, timeout=timeout_s, retry_policy=NO_RETRY)

    def health(self) -> Health:
        health = super().health()
        if not health.ok:
            raise ApiError(503, "redis_unavailable", f"health: {health.status}")
        return health
