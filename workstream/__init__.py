"""WorkStream: a Redis-backed job queue that never loses an accepted job.

What handler code imports::

    from workstream import handler, JobCancelled, JobContext, PermanentError

    @handler("email_send")
    def send(payload, ctx: JobContext):
        ...

What code that submits and watches jobs imports (see `workstream.client`)::

    from workstream import Client, AsyncClient

The processes live in `workstream.api`, `workstream.worker` and `workstream.cli`; the
state machine, key layout and Lua scripts in `workstream.common`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workstream.worker.registry import (
    JobCancelled,
    JobContext,
    JobTimeoutError,
    PermanentError,
    RetryLater,
    handler,
)

if TYPE_CHECKING:
    from workstream.client import AsyncClient, Client

__all__ = [
    "AsyncClient",
    "Client",
    "JobCancelled",
    "JobContext",
    "JobTimeoutError",
    "PermanentError",
    "RetryLater",
    "handler",
]


def __getattr__(name: str) -> Any:
    # Imported on first use: worker processes and handler modules need neither the client
    # nor its HTTP library.
    if name in ("Client", "AsyncClient"):
        from workstream import client

        return getattr(client, name)
    raise AttributeError(f"module 'workstream' has no attribute {name!r}")
