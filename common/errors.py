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
