"""Leases: the Python worker's claim, fencing and recovery offered to consumers over HTTP.

A consumer leases jobs into its own processing list (`processing:http:<consumer>`) through the
claim path the Python worker uses (claim_into), so the job's lease number is the same fencing
token complete.lua and fail.lua check. The token handed out is `<lease number>.<nonce>`: the
nonce (random, kept on the job as `lease_nonce`) makes a token of one job useless on another
that happens to be on the same lease number. A lease expires at `lease_expires_at`; its reclaim
deadline is set so that the sweeper's reclaim (deadline + WORKER_TTL) takes the job back at the
expiry, as an attempt used, exactly as for a job overdue in a dead worker.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from workstream.common import scripts
from workstream.common.errors import (
    JobNotFoundError,
    StaleLeaseError,
    ValidationError,
    WorkStreamError,
)
from workstream.common.jobs import ClaimedJob, Job
from workstream.common.shards import shard_of_queue
from workstream.common.store import HTTP_CONSUMER_PREFIX, JobStore

MAX_LEASE_COUNT = 100
MAX_LEASE_S = 3600.0
MIN_LEASE_S = 1.0
# The HTTP consumer's worker id, so that it never shares a processing list with a Python worker.
CONSUMER_PREFIX = HTTP_CONSUMER_PREFIX
TOKEN_PATTERN = re.compile(r"([0-9]{1,15})\.([0-9a-f]{16})")
_CHECK_FIELDS = ("status", "lease", "lease_nonce", "lease_expires_at", "worker", "type", "queue")


class LeaseLostError(WorkStreamError):
    """A stale, unknown or expired lease: nothing was changed (the attempt may be recovered)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"the lease on job {job_id} is not held (stale, unknown or expired)")
        self.job_id = job_id


@dataclass(frozen=True)
class Lease:
    job: Job
    token: str
    expires_at: int  # Redis server time, ms


def worker_id(consumer: str) -> str:
    return CONSUMER_PREFIX + consumer


class Leases:
    """The lease transitions (lease.lua, extend.lua) and the answers to a lease, which go
    through JobStore's complete and fail, the Python worker's own."""

    def __init__(self, store: JobStore) -> None:
        # The API's ShardedStore (common/shards.py): each call goes to its shard's Leases.
        self._shards = {
            shard: Leases(shard_store)
            for shard, shard_store in getattr(store, "stores", {}).items()
        }
        self._store = store
        self._redis = store.redis
        self._keys = store.keys
        settings = store.settings
        # The sweeper reclaims at deadline + WORKER_TTL (worker.background.sweeper_step).
        self._margin_ms = round(settings.worker_ttl.total_seconds() * 1000)
        self._info_ttl_ms = round(settings.worker_ttl.total_seconds() * 3000)

    def lease(
        self, consumer: str, queues: Sequence[str], count: int, lease_s: float, host: str = ""
    ) -> tuple[list[Lease], int]:
        """Leases up to `count` pending jobs from `queues` (in order, paused ones skipped).
        Returns the leases and the Redis time of the call (ms), also a heartbeat. With shards,
        the queues of one call share one shard (the consumer's processing list is in it)."""
        if self._shards:
            found = {shard_of_queue(self._store.settings, queue) for queue in queues}
            if len(found) > 1:
                raise ValidationError(
                    "queues", "a lease's queues must be in one shard (QUEUE_SHARDS)"
                )
            return self._shards[found.pop()].lease(consumer, queues, count, lease_s, host)
        worker = worker_id(consumer)
        spec = scripts.SCRIPTS["lease"].keys
        keys = scripts.keys_for(spec, self._keys, queues, worker_id=worker)
        nonces = ",".join(os.urandom(8).hex() for _ in range(count))
        args = [
            self._keys.prefix,
            worker,
            count,
            round(lease_s * 1000),
            self._margin_ms,
            self._info_ttl_ms,
            host,
            nonces,
            consumer,
            *queues,
        ]
        reply = scripts.call(self._redis, "lease", keys, args)
        expires = int(reply[0])
        leases = []
        for flat in reply[1:]:
            data = dict(zip(flat[::2], flat[1::2], strict=True))
            token = f"{data['lease']}.{data['lease_nonce']}"
            leases.append(Lease(Job.from_hash(data), token, expires))
        return leases, expires - round(lease_s * 1000)

    def complete(self, job_id: str, token: str, result_json: str) -> Job:
        if self._shards:
            return self._for_job(job_id).complete(job_id, token, result_json)
        held = self._held(job_id, token)
        codes, _ = self._store.complete_many(held.worker, [(held.claimed, result_json)], 0, ())
        # Anything else: reclaimed between the check and the script (counted there).
        if codes[0] not in ("ok", "cancelled"):
            raise LeaseLostError(job_id)
        return self._job(job_id)

    def fail(self, job_id: str, token: str, error: str, *, retry: bool) -> Job:
        if self._shards:
            return self._for_job(job_id).fail(job_id, token, error, retry=retry)
        held = self._held(job_id, token)
        try:
            self._store.fail(held.worker, held.claimed, error, permanent=not retry)
        except (StaleLeaseError, JobNotFoundError):
            raise LeaseLostError(job_id) from None
        return self._job(job_id)

    def extend(
        self, job_id: str, token: str, lease_s: float, progress_json: str = ""
    ) -> tuple[int, bool]:
        """Moves the expiry to now + lease_s. Returns (expires_at ms, cancel requested)."""
        if self._shards:
            return self._for_job(job_id).extend(job_id, token, lease_s, progress_json)
        lease, nonce = self._parse(job_id, token)
        keys = scripts.keys_for(scripts.SCRIPTS["extend"].keys, self._keys, job_id=job_id)
        args = [
            self._keys.prefix,
            job_id,
            lease,
            nonce,
            round(lease_s * 1000),
            self._margin_ms,
            self._info_ttl_ms,
            progress_json,
        ]
        reply = scripts.call(self._redis, "extend", keys, args)
        if reply[0] != "ok":
            raise LeaseLostError(job_id)
        return int(reply[1]), int(reply[2]) == 1

    def _for_job(self, job_id: str) -> Leases:
        holder = self._store.holder(job_id)  # type: ignore[attr-defined]  # a ShardedStore
        if holder is None:  # names a shard not configured: no such lease here
            raise LeaseLostError(job_id)
        return self._shards[holder.shard]

    def _parse(self, job_id: str, token: str) -> tuple[str, str]:
        match = TOKEN_PATTERN.fullmatch(token)
        if match is None:
            self._lost(job_id)
        assert match is not None
        return match.group(1), match.group(2)

    def _held(self, job_id: str, token: str) -> _Held:
        """The holder of a live lease that `token` names, or of the lease whose answer this is
        sent again (the scripts answer a resend as they did the first time). complete.lua and
        fail.lua check the lease number again, atomically; this check adds the nonce and the
        expiry, and finds the holder's processing list."""
        lease, nonce = self._parse(job_id, token)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hmget(self._keys.job(job_id), _CHECK_FIELDS)
        pipe.time()
        values, (seconds, micros) = pipe.execute()
        status, held_lease, held_nonce, expires, worker, job_type, queue = values
        now = int(seconds) * 1000 + int(micros) // 1000
        matches = held_lease == lease and hmac.compare_digest(held_nonce or "", nonce)
        expired = status == "processing" and int(expires or 0) < now
        if status is None or not matches or expired:
            self._lost(job_id)
        claimed = ClaimedJob(job_id, job_type, queue, "", 0, 0, 0, lease, 0)
        return _Held(worker or "", claimed)

    def _lost(self, job_id: str) -> None:
        """Counted like a late worker completion; nothing else is written."""
        self._redis.hincrby(self._keys.stats, "stale_completions", 1)
        raise LeaseLostError(job_id)

    def _job(self, job_id: str) -> Job:
        job = self._store.get_job(job_id)
        if job is None:  # its record expired at once (a result TTL of ~0)
            raise JobNotFoundError(job_id)
        return job


@dataclass(frozen=True)
class _Held:
    worker: str
    claimed: ClaimedJob
