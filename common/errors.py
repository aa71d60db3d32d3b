"""Domain errors. No HTTP here: api/errors.py maps each to a status and a stable code."""

from __future__ import annotations


class WorkStreamError(Exception):
    """Base of every error WorkStream raises on purpose."""


class SettingsError(WorkStreamError):
    """One or more environment variables are invalid; the message names each."""


class ValidationError(WorkStreamError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class JobNotFoundError(WorkStreamError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class QueueFullError(WorkStreamError):
    def __init__(self, queue: str, capacity: int) -> None:
        super().__init__(f"queue {queue!r} is full ({capacity} jobs)")
        self.queue = queue
        self.capacity = capacity


class InvalidTransitionError(WorkStreamError):
    def __init__(self, job_id: str, transition: str, status: str) -> None:
        super().__init__(f"cannot {transition} job {job_id}: it is {status}")
        self.job_id = job_id
        self.transition = transition
        self.status = status


class StaleLeaseError(WorkStreamError):
    """A worker tried to finish a job whose claim it lost (the sweeper reclaimed it)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"lease on job {job_id} is no longer held")
        self.job_id = job_id


class QueueNotFoundError(WorkStreamError):
    def __init__(self, queue: str) -> None:
        super().__init__(f"queue {queue!r} does not exist")
        self.queue = queue


class QueueNotEmptyError(WorkStreamError):
    def __init__(self, queue: str, holding: str) -> None:
        super().__init__(f"queue {queue!r} still holds jobs ({holding})")
        self.queue = queue


class TooManyQueuesError(WorkStreamError):
    """A job for a new queue while MAX_QUEUES names are in use; nothing was written."""

    def __init__(self, queue: str, limit: int) -> None:
        super().__init__(
            f"queue {queue!r} would exceed MAX_QUEUES ({limit}); delete an empty queue first"
        )
        self.queue = queue
        self.limit = limit


class TooManyTypesError(WorkStreamError):
    """A new (queue, type) pair while MAX_TYPES are in use; nothing was written."""

    def __init__(self, queue: str, job_type: str, limit: int) -> None:
        super().__init__(
            f"job type {job_type!r} in queue {queue!r} would exceed MAX_TYPES ({limit} job "
            "types in use, counted per queue); delete an empty queue first"
        )
        self.queue = queue
        self.job_type = job_type
        self.limit = limit


class IdempotencyConflictError(WorkStreamError):
    """An idempotency key reused for a different request; nothing was written. index: the
    request's position in its batch (0 for a single submission)."""

    def __init__(self, key: str, index: int, job_id: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was used for a different request (job {job_id}); "
            "send that request again, or use a new key"
        )
        self.key = key
        self.index = index
        self.job_id = job_id


class DuplicateJobError(WorkStreamError):
    """A job whose unique key a live job holds; nothing was written."""

    def __init__(self, key: str, index: int, job_id: str) -> None:
        super().__init__(f"job {job_id} holds unique key {key!r}")
        self.key = key
        self.index = index
        self.job_id = job_id


class IdConflictError(WorkStreamError):
    """A client's own job id that a job submitted with another request holds; nothing was
    written. index: the request's position in its batch (0 for a single submission)."""

    def __init__(self, index: int, job_id: str) -> None:
        super().__init__(
            f"job id {job_id!r} is taken by a job submitted with a different request; "
            "send that request again, or choose another id"
        )
        self.index = index
        self.job_id = job_id


class DependencyError(WorkStreamError):
    """depends_on that cannot be met; nothing was written. code: unknown_parents (ids naming
    no job, nor one of the submission) | dependency_cycle (ids of the submission that depend
    on each other in a cycle) | too_many_dependents (a parent that would pass MAX_DEPENDENTS
    children)."""

    def __init__(self, code: str, ids: list[str]) -> None:
        what = {
            "unknown_parents": "no job has the id(s)",
            "dependency_cycle": "a dependency cycle joins the id(s)",
            "too_many_dependents": "too many jobs depend on",
        }.get(code, code)
        super().__init__(f"depends_on: {what} {', '.join(ids)}")
        self.code = code
        self.ids = ids


class BatchNotFoundError(WorkStreamError):
    def __init__(self, batch_id: str) -> None:
        super().__init__(f"batch {batch_id} not found")
        self.batch_id = batch_id


class BatchSealedError(WorkStreamError):
    """Jobs sent to a batch that is sealed (or settled); nothing was written."""

    def __init__(self, batch_id: str, state: str) -> None:
        super().__init__(f"batch {batch_id} is {state}: no job may join it")
        self.batch_id = batch_id
        self.state = state


class BatchTooLargeError(WorkStreamError):
    def __init__(self, batch_id: str, limit: int) -> None:
        super().__init__(f"batch {batch_id} would hold more than {limit} jobs")
        self.batch_id = batch_id
        self.limit = limit


class BatchConflictError(WorkStreamError):
    """The Idempotency-Key of a batch's creation sent with other jobs; nothing was written."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(
            f"the idempotency key created batch {batch_id} with other jobs; "
            "send that request again, or use a new key"
        )
        self.batch_id = batch_id


class NotInBatchError(WorkStreamError):
    """An entry naming an existing job (its id or idempotency key) that is not a member of the
    batch: a job never joins a batch after it was created. Nothing was written."""

    def __init__(self, index: int, job_id: str) -> None:
        super().__init__(f"job {job_id} exists and is not a member of this batch")
        self.index = index
        self.job_id = job_id
