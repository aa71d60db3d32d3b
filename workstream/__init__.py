"""WorkStream: a Redis-backed job queue that never loses an accepted job.

What handler code imports::

    from workstream import handler, JobContext, PermanentError

    @handler("email_send")
    def send(payload, ctx: JobContext):
        ...

The processes live in `workstream.api`, `workstream.worker` and `workstream.cli`; the
state machine, key layout and Lua scripts in `workstream.common`.
"""

from __future__ import annotations

from workstream.worker.registry import JobContext, JobTimeoutError, PermanentError, handler

__all__ = ["JobContext", "JobTimeoutError", "PermanentError", "handler"]
