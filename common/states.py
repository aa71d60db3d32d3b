"""The job state machine, written once. Lua script stems, store methods and log events use these
transition names; the API's 409 answers read the same table."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final


class JobStatus(str, Enum):  # StrEnum is 3.11+; we support 3.10
    SCHEDULED = "scheduled"
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Created with depends_on: waits until every parent has ended (common/scripts/_deps.lua).
    WAITING = "waiting"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL: Final = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
S = JobStatus


@dataclass(frozen=True)
class Transition:
    sources: frozenset[JobStatus]
    targets: frozenset[JobStatus]
    summary: str


def _t(sources: set[JobStatus], targets: set[JobStatus], summary: str) -> Transition:
    return Transition(frozenset(sources), frozenset(targets), summary)


# key == Lua file stem == JobStore method == log event suffix
TRANSITIONS: Final[dict[str, Transition]] = {
    # depends_on: waiting until every parent has ended, or cancelled at once by one that failed.
    "enqueue": _t(
        set(),
        {S.PENDING, S.SCHEDULED, S.WAITING, S.CANCELLED},
        "create jobs (capacity, idempotency, delay, dependencies)",
    ),
    "claim": _t({S.PENDING}, {S.PROCESSING}, "move up to N ids into a worker's list and start"),
    "lease": _t({S.PENDING}, {S.PROCESSING}, "claim and start up to N jobs for an HTTP consumer"),
    "start": _t({S.PENDING}, {S.PROCESSING}, "start one id a worker took with BLMOVE"),
    "extend": _t({S.PROCESSING}, {S.PROCESSING}, "move a held HTTP lease's expiry, store progress"),
    # A run whose cancel was requested ends cancelled however it ends (common/scripts/cancel.lua).
    "complete": _t(
        {S.PROCESSING}, {S.COMPLETED, S.CANCELLED}, "record a result under a valid lease"
    ),
    "fail": _t(
        {S.PROCESSING},
        {S.SCHEDULED, S.PENDING, S.FAILED, S.CANCELLED},
        "retry with backoff or dead",
    ),
    "cancel": _t(
        {S.PENDING, S.SCHEDULED, S.PROCESSING, S.WAITING},
        {S.CANCELLED, S.PROCESSING},
        "withdraw a job not yet started; ask a running one to stop (cancel_requested)",
    ),
    "expire": _t(
        {S.PENDING, S.SCHEDULED, S.WAITING}, {S.CANCELLED}, "cancel jobs not started by expires_at"
    ),
    "retry": _t({S.FAILED}, {S.PENDING}, "operator retry of a dead job, attempts reset"),
    "promote": _t({S.SCHEDULED}, {S.PENDING}, "move due scheduled jobs onto their queue"),
    "recover": _t(
        {S.PROCESSING, S.PENDING},
        {S.PENDING, S.FAILED, S.CANCELLED},
        "requeue a dead worker's list (a run asked to stop ends cancelled)",
    ),
    "reclaim": _t(
        {S.PROCESSING},
        {S.SCHEDULED, S.PENDING, S.FAILED, S.CANCELLED},
        "take back an overdue job (a run asked to stop ends cancelled)",
    ),
    "release": _t({S.PROCESSING, S.PENDING}, {S.PENDING}, "shutdown: requeue without an attempt"),
    "delete": _t({S.COMPLETED, S.FAILED, S.CANCELLED}, set(), "remove a terminal job's record"),
}


def allowed(transition: str, status: JobStatus) -> bool:
    return status in TRANSITIONS[transition].sources
