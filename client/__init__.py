"""The Python client for the WorkStream REST API, blocking (`Client`) or asyncio
(`AsyncClient`), with the same methods::

    from workstream import Client

    with Client("http://127.0.0.1:8080", token="...") as client:
        job = client.submit("email_send", {"to": "a@example.com"}, queue="critical")
        job = client.wait(job.id, timeout=30)       # long-polls; job.finished tells
        if job.status == "failed":
            print(job.error, job.history[-1].traceback if job.history else "")

Errors are `workstream.client.errors` classes, one per family of the API's stable codes
(`NotFound`, `Conflict`, `QueueFull`, ...), each with `.status`, `.code`, `.message` and
`.retry_after`; `TransportError` when no answer came. 503 answers and connection failures
are retried a bounded number of times (`RetryPolicy`), honouring Retry-After; every submit
carries an idempotency key (made up when you give none), so a retry never creates a second
job."""

from __future__ import annotations

from workstream.client.aio import AsyncClient
from workstream.client.calls import JobRequest, RetryPolicy
from workstream.client.errors import (
    ApiError,
    ClientError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    QueueFull,
    ServerError,
    TransportError,
    Unauthorized,
    Unavailable,
)
from workstream.client.models import Attempt, Health, Job, JobPage, Queue, Submitted, Worker
from workstream.client.sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "Attempt",
    "Client",
    "ClientError",
    "Conflict",
    "Forbidden",
    "Health",
    "InvalidRequest",
    "Job",
    "JobPage",
    "JobRequest",
    "NotFound",
    "Queue",
    "QueueFull",
    "RetryPolicy",
    "ServerError",
    "Submitted",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "Worker",
]
