"""Which token scopes may call each route: one table, read by BearerAuth and walked by a test.

A token holds one or more scopes (API_TOKENS `scope:token`; API_TOKEN tokens hold them all).
`admin` may call everything; the table names, per route template and method, the other scopes
that may. A route missing from the table is admin-only (fail closed), and
tests/integration/test_scopes.py fails until it is listed.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from workstream.common.settings import TOKEN_SCOPES


class Scope(str, Enum):
    PRODUCE = "produce"  # submits jobs, reads jobs
    WORK = "work"  # leases jobs and answers its leases, reads jobs
    READ = "read"  # reads everything, scrapes /metrics (the dashboard's read-only token)
    ADMIN = "admin"  # everything: pause, resume, purge, delete, cancel, retry


assert tuple(scope.value for scope in Scope) == TOKEN_SCOPES, "settings validates these names"

ALL: Final = frozenset(Scope)
ADMIN_ONLY: Final[frozenset[Scope]] = frozenset()
READERS: Final = frozenset({Scope.READ})
JOB_READERS: Final = frozenset({Scope.PRODUCE, Scope.WORK, Scope.READ})
PRODUCERS: Final = frozenset({Scope.PRODUCE})
WORKERS: Final = frozenset({Scope.WORK})
# Routes open without any token (liveness probes, the dashboard's static files); BearerAuth
# lets them through by path before routing, and the table test checks the two agree.
PUBLIC: Final = ALL

# (route template, method) -> scopes that may call it besides admin.
ROUTE_SCOPES: Final[dict[tuple[str, str], frozenset[Scope]]] = {
    ("/jobs", "POST"): PRODUCERS,
    ("/job", "POST"): PRODUCERS,
    ("/jobs/batch", "POST"): PRODUCERS,
    ("/jobs", "GET"): JOB_READERS,
    ("/jobs/{job_id}", "GET"): JOB_READERS,
    ("/status/{job_id}", "GET"): JOB_READERS,
    ("/result/{job_id}", "GET"): JOB_READERS,
    ("/jobs/{job_id}", "DELETE"): ADMIN_ONLY,
    # No job records who submitted it, so "its own jobs" cannot be told apart: admin only.
    ("/jobs/{job_id}/cancel", "POST"): ADMIN_ONLY,
    ("/jobs/{job_id}/retry", "POST"): ADMIN_ONLY,
    ("/batches", "POST"): PRODUCERS,
    ("/batches", "GET"): JOB_READERS,
    ("/batches/{batch_id}", "GET"): JOB_READERS,
    ("/batches/{batch_id}/jobs", "POST"): PRODUCERS,
    ("/batches/{batch_id}/seal", "POST"): PRODUCERS,
    ("/leases", "POST"): WORKERS,
    ("/jobs/{job_id}/complete", "POST"): WORKERS,
    ("/jobs/{job_id}/fail", "POST"): WORKERS,
    ("/jobs/{job_id}/extend", "POST"): WORKERS,
    ("/queues", "GET"): READERS,
    ("/queues/{name}", "GET"): READERS,
    ("/queues/{name}", "DELETE"): ADMIN_ONLY,
    ("/queues/{name}/pause", "POST"): ADMIN_ONLY,
    ("/queues/{name}/resume", "POST"): ADMIN_ONLY,
    ("/queues/{name}/limits", "GET"): READERS,
    ("/queues/{name}/limits", "PUT"): ADMIN_ONLY,
    ("/queues/{name}/limits", "DELETE"): ADMIN_ONLY,
    ("/queues/{name}/failed/retry", "POST"): ADMIN_ONLY,
    ("/queues/{name}/failed/purge", "POST"): ADMIN_ONLY,
    ("/workers", "GET"): READERS,
    ("/schedules", "GET"): READERS,
    ("/schedules/{schedule_id}", "GET"): READERS,
    ("/schedules/{schedule_id}", "PUT"): ADMIN_ONLY,
    ("/schedules/{schedule_id}", "DELETE"): ADMIN_ONLY,
    ("/schedules/{schedule_id}/pause", "POST"): ADMIN_ONLY,
    ("/schedules/{schedule_id}/resume", "POST"): ADMIN_ONLY,
    ("/metrics", "GET"): READERS,
    ("/stats/timeline", "GET"): READERS,
    ("/events", "GET"): READERS,  # every job's transitions: what GET /jobs shows
    ("/openapi.json", "GET"): ALL,  # the protocol's description, needed by every client
    ("/health", "GET"): PUBLIC,
    ("/", "GET"): PUBLIC,
    ("/ui", "GET"): PUBLIC,
    ("/ui", "HEAD"): PUBLIC,
    ("/ui/", "GET"): PUBLIC,
    ("/ui/", "HEAD"): PUBLIC,
}


TEMPLATES: Final = frozenset(template for template, _ in ROUTE_SCOPES)


def allowed(template: str, method: str, held: frozenset[Scope]) -> bool:
    if Scope.ADMIN in held:
        return True
    scopes = ROUTE_SCOPES.get((template, method))
    if scopes is None:
        # Every responder of a listed route is in the table (the test walks them), so another
        # method there meets Falcon's own 405 or OPTIONS answer, which reveals nothing.
        return template in TEMPLATES
    return not held.isdisjoint(scopes)


def needed(template: str, method: str) -> list[str]:
    """The scopes that would do, named in a 403 (admin last)."""
    others = ROUTE_SCOPES.get((template, method), ADMIN_ONLY)
    return [scope.value for scope in Scope if scope in others and scope is not Scope.ADMIN] + [
        Scope.ADMIN.value
    ]
