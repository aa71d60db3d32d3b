"""The Redis key layout, written once. Every key shares the namespace's hash tag, so each Lua
script touches one cluster slot."""

from __future__ import annotations

from dataclasses import dataclass

from workstream.common.states import JobStatus


@dataclass(frozen=True)
class Keys:
    namespace: str
    # A shard group (common/shards.py): its own hash tag, so its keys live on one cluster slot
    # of their own. The default shard ("") keeps the namespace's tag: today's layout.
    shard: str = ""

    @property
    def prefix(self) -> str:
        if self.shard:
            return f"ws:{{{self.namespace}/{self.shard}}}:"
        return f"ws:{{{self.namespace}}}:"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def queue(self, name: str) -> str:
        return f"{self.prefix}queue:{name}"

    def processing(self, worker_id: str) -> str:
        return f"{self.prefix}processing:{worker_id}"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}worker:{worker_id}"

    def scheduled(self, queue: str) -> str:
        return f"{self.prefix}scheduled:{queue}"

    def dead(self, queue: str) -> str:
        return f"{self.prefix}dead:{queue}"

    def status(self, status: JobStatus) -> str:
        return f"{self.prefix}status:{status.value}"

    def types(self, queue: str) -> str:
        """SET: the job types used in a queue (bounded by MAX_TYPES), so that deleting the
        queue knows which stats fields are its own."""
        return f"{self.prefix}types:{queue}"

    def limits(self, queue: str) -> str:
        """HASH: a queue's limits (rate, concurrency, group_concurrency; common/limits.py) and
        the rate's state (`tat`, the GCRA's theoretical arrival time in ms). Absent: none."""
        return f"{self.prefix}limits:{queue}"

    def groups(self, queue: str) -> str:
        """HASH: group -> jobs of that group processing now, for the queue's group cap; and
        `:parked` -> the queue's jobs parked at a cap (counted toward its capacity)."""
        return f"{self.prefix}groups:{queue}"

    def waiting(self, group_ref: str) -> str:
        """LIST: jobs parked while their group was at its cap, oldest on the right; one is
        released to the front of the queue each time a job of the group leaves processing.
        group_ref is group_ref(queue, group)."""
        return f"{self.prefix}waiting:{group_ref}"

    def priority(self, queue: str) -> str:
        """ZSET: a queue's pending jobs of priority 1-9 (priority 0, the default, stays in the
        queue list). Score (10 - priority) * 2^48 + a sequence within the level: the lowest is
        taken first, so higher levels first and FIFO within one (_lib.lua push_priority)."""
        return f"{self.prefix}priority:{queue}"

    def dependents(self, job_id: str) -> str:
        """SET: ids of waiting jobs that depend on this job (depends_on), registered by
        enqueue.lua; read and emptied by the script that ends the job (_deps.lua). After an end
        that did not complete: the children a parent's failure cancelled, kept (with the
        record's TTL, deleted with it) for an operator retry to revive."""
        return f"{self.prefix}dependents:{job_id}"

    def remote_children(self, job_id: str) -> str:
        """HASH: waiting jobs in other shards that depend on this job, child id -> its shard,
        linked by a hand-off (dep_link.lua); consumed by the script that ends the job, which
        owes each child a settle hand-off to its shard (_deps.lua, common/outbox.py)."""
        return f"{self.prefix}remote_children:{job_id}"

    def awaiting(self, queue: str) -> str:
        """ZSET: a queue's jobs in status waiting (id -> created_at), counted toward its
        capacity and shown by GET /queues; left when released, cancelled or expired."""
        return f"{self.prefix}awaiting:{queue}"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}idem:{key}"

    def unique(self, key: str) -> str:
        """STRING: a `unique` option's lock, `<job id>:<until>`, SET with PX (the ttl). Held
        while that job is live by its `until`; enqueue.lua judges that from the job itself."""
        return f"{self.prefix}unique:{key}"

    def schedule(self, schedule_id: str) -> str:
        """HASH: one schedule's definition and its run bookkeeping (common/schedules.py)."""
        return f"{self.prefix}schedule:{schedule_id}"

    def timeline(self, minute: int) -> str:
        """STRING: the cumulative stats as they stood early in a minute (epoch minutes, Redis
        server time), for the dashboard's charts; expires after an hour."""
        return f"{self.prefix}timeline:{minute}"

    @property
    def workers(self) -> str:
        return f"{self.prefix}workers"

    @property
    def queues(self) -> str:
        return f"{self.prefix}queues"

    @property
    def paused(self) -> str:
        return f"{self.prefix}paused"

    @property
    def stats(self) -> str:
        return f"{self.prefix}stats"

    @property
    def inflight(self) -> str:
        return f"{self.prefix}inflight"

    @property
    def jobs(self) -> str:
        return f"{self.prefix}jobs"

    @property
    def expiries(self) -> str:
        return f"{self.prefix}expiries"

    @property
    def expiring(self) -> str:
        """ZSET: ids of jobs with an expires_at -> that time (ms); expire.lua cancels those due
        that never started, in bounded batches."""
        return f"{self.prefix}expiring"

    @property
    def deadlines(self) -> str:
        return f"{self.prefix}deadlines"

    @property
    def schedules(self) -> str:
        """ZSET: every schedule id, score 0 (listed in id order, counted for MAX_SCHEDULES)."""
        return f"{self.prefix}schedules"

    @property
    def schedules_due(self) -> str:
        """ZSET: schedule id -> next run (ms) of each schedule not paused; firers read it."""
        return f"{self.prefix}schedules_due"

    @property
    def events(self) -> str:
        """STREAM: one entry per job transition, appended by the script that makes it and
        capped near EVENTS_MAX (common/events.py, common/scripts/_events.lua)."""
        return f"{self.prefix}events"

    @property
    def events_max(self) -> str:
        """STRING: the event stream's cap that every script trims to (0: no stream), written
        from EVENTS_MAX by each process at start; absent: the default."""
        return f"{self.prefix}events:max"

    def batch(self, batch_id: str) -> str:
        """HASH: a batch (common/batches.py): its state (open | sealed | settled), member counts
        by outcome and its callbacks; expires RESULT_TTL after it settles."""
        return f"{self.prefix}batch:{batch_id}"

    def batch_jobs(self, batch_id: str) -> str:
        """LIST: a batch's member ids in the order they were added (paged by offset)."""
        return f"{self.prefix}batch_jobs:{batch_id}"

    @property
    def batches(self) -> str:
        """ZSET: every batch id -> created ms (listing index, newest first)."""
        return f"{self.prefix}batches"

    @property
    def batch_expiries(self) -> str:
        """ZSET: settled batch ids -> when their record expires (settling drops due entries)."""
        return f"{self.prefix}batch_expiries"

    @property
    def shards(self) -> str:
        """SET, default shard only: the named shards (QUEUE_SHARDS) processes have started with,
        so a shard dropped from the setting is still checked for stranded jobs at start."""
        return f"{self.prefix}shards"

    @property
    def outbox(self) -> str:
        """ZSET: this shard's hand-offs owed to another shard (common/outbox.py), entry
        `<target shard>|<kind>|<key>` -> when it is next due (ms); the mover performs each in
        its target shard with an idempotent script and only then removes it."""
        return f"{self.prefix}outbox"

    @property
    def outbox_body(self) -> str:
        """HASH: outbox entry -> its JSON body (what the target shard's script is given)."""
        return f"{self.prefix}outbox_body"

    def handoff(self, key: str) -> str:
        """STRING, in a hand-off's target shard: the mark that the hand-off `key` was performed,
        so a repeat (the mover died before removing its entry) does nothing; expires after
        HANDOFF_MARK_TTL_MS."""
        return f"{self.prefix}handoff:{key}"

    @property
    def sweeper_lock(self) -> str:
        return f"{self.prefix}lock:sweeper"

    def all_status(self) -> list[str]:
        return [self.status(status) for status in JobStatus]


# The member _lib.lua pushes onto an empty queue list to wake a worker blocked in BLMOVE when a
# prioritized job arrives; never a job id (32 hex digits). At most one per list, at its front.
WAKE = "wake"


def group_ref(queue: str, group: str) -> str:
    """A group within its queue; unambiguous since neither name may hold a ':'."""
    return f"{queue}:{group}"
