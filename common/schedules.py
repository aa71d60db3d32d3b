"""Schedules: a job template run on a cron expression (in a time zone) or every fixed interval.

Each due run is enqueued exactly once however many processes fire: schedule_fire.lua checks the
revision and due time the firer read (compare-and-set), creates the run's job under an id
derived from the schedule and the due time, and advances the schedule, all in one script. Run
times are computed here, with cronsim (daylight-saving gaps and repeats as cronie handles them:
a run in a skipped hour runs when the clocks have moved on, a repeated hour runs once).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis
from cronsim import CronSim, CronSimError

from workstream.common import scripts
from workstream.common.durations import parse_duration
from workstream.common.errors import ValidationError, WorkStreamError
from workstream.common.jobs import SPEC_FIELDS, TYPE_PATTERN, JobSpec
from workstream.common.keys import Keys
from workstream.common.serialization import dumps, loads, ms_to_rfc3339
from workstream.common.settings import Settings
from workstream.common.shards import shard_of_queue

log = logging.getLogger(__name__)

# Schedule ids follow the idempotency keys' rules.
SCHEDULE_ID_PATTERN = TYPE_PATTERN
FIELDS = frozenset({"cron", "timezone", "every", "job", "paused", "missed"})
MISSED_POLICIES = ("run_once", "skip")
MIN_EVERY_MS = 1000
MAX_EVERY_MS = 366 * 86_400_000
# What a run's job may be given; the schedule itself times and keys each run, so the other
# options of POST /jobs (delay, run_at, idempotency_key, unique, expires_*) are refused rather
# than silently dropped.
TEMPLATE_FIELDS = frozenset({"type", "payload", "queue", "max_attempts", "timeout", "priority"})
_TIMEZONE = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+){0,2}")
# Due schedules one firer reads per page, and pages per tick: a tick stays bounded however
# many are due.
FIRE_BATCH = 100
FIRE_PAGES = 10
# Outcomes after which a schedule is no longer due at `now` (fired, skipped, or moved on by
# another firer, a pause or a delete); any other leaves it due (a full queue, an unreadable
# definition) and at the front of the due index.
_DONE = frozenset({"fired", "skipped", "stale", "moved"})
# A run this late was missed (downtime) rather than merely late, as is one whose next run is
# also past: the missed-run policy decides what happens to it.
MISSED_AFTER_MS = 60_000
_CONFLICT_RETRIES = 5
MAX_REFUSALS_REMEMBERED = 1000


class ScheduleInputError(ValidationError):
    """Bad input for a schedule; `code` is the API's stable error code."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(field, message)
        self.code = code


class ScheduleNotFoundError(WorkStreamError):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"schedule {schedule_id!r} not found")
        self.schedule_id = schedule_id


class TooManySchedulesError(WorkStreamError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"a new schedule would exceed MAX_SCHEDULES ({limit}); delete one first")
        self.limit = limit


def check_schedule_id(raw: str) -> str:
    if not SCHEDULE_ID_PATTERN.fullmatch(raw) or "\n" in raw:
        raise ScheduleInputError(
            "validation_error", "id", f"expected {SCHEDULE_ID_PATTERN.pattern}"
        )
    return raw


@dataclass(frozen=True)
class Timing:
    """When runs fall due: a cron expression in a time zone, or every `every_ms` from the
    previous run (from the PUT or resume for the first)."""

    cron: str | None = None
    timezone: str = "UTC"
    every_ms: int | None = None

    def after(self, ms: int) -> int:
        """The first run strictly after `ms`."""
        if self.every_ms is not None:
            return ms + self.every_ms
        assert self.cron is not None
        start = datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(self.timezone))
        return int(next(CronSim(self.cron, start)).timestamp() * 1000)

    def following(self, due: int, now: int) -> int:
        """The first run after `now` on the schedule's grid (an interval keeps its phase)."""
        if self.every_ms is not None:
            return due + ((max(now - due, 0) // self.every_ms) + 1) * self.every_ms
        return self.after(max(now, due))

    def signature(self) -> str:
        return f"{self.cron or ''}|{self.timezone}|{self.every_ms or ''}"


@dataclass(frozen=True)
class Definition:
    """A validated PUT body; `body` is what GET shows back (defaults filled in)."""

    timing: Timing
    template: dict[str, Any]
    paused: bool
    missed: str
    body: dict[str, Any]

    @classmethod
    def from_mapping(cls, data: Any) -> Definition:
        if not isinstance(data, Mapping):
            raise ScheduleInputError("validation_error", "body", "expected a JSON object")
        unknown = sorted(set(data) - FIELDS)
        if unknown:
            raise ScheduleInputError("validation_error", unknown[0], "unknown field")
        timing, timing_body = _timing(data)
        template = _template(data.get("job"))
        paused = data.get("paused", False)
        if not isinstance(paused, bool):
            raise ScheduleInputError("validation_error", "paused", "expected true or false")
        missed = data.get("missed", "run_once")
        if missed not in MISSED_POLICIES:
            raise ScheduleInputError(
                "invalid_missed_policy", "missed", f"expected one of {', '.join(MISSED_POLICIES)}"
            )
        body = {**timing_body, "job": template, "paused": paused, "missed": missed}
        return cls(timing, template, paused, missed, body)


def _timing(data: Mapping[str, Any]) -> tuple[Timing, dict[str, Any]]:
    cron, every, zone = data.get("cron"), data.get("every"), data.get("timezone")
    if (cron is None) == (every is None):
        raise ScheduleInputError("validation_error", "cron", "send exactly one of cron and every")
    if every is not None:
        if zone is not None:
            raise ScheduleInputError("validation_error", "timezone", "only with cron")
        every_ms = _every_ms(every)
        return Timing(every_ms=every_ms), {"every": every}
    if not isinstance(cron, str) or len(cron) > 256:
        raise ScheduleInputError("invalid_cron", "cron", "expected a cron expression string")
    zone = "UTC" if zone is None else zone
    if not isinstance(zone, str) or not _TIMEZONE.fullmatch(zone):
        raise ScheduleInputError("unknown_timezone", "timezone", "expected an IANA time zone")
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleInputError(
            "unknown_timezone", "timezone", f"unknown time zone {zone!r}"
        ) from None
    try:
        next(CronSim(cron, datetime.now(tz)))  # also refuses one that never matches (Feb 30)
    except (CronSimError, StopIteration) as ex:
        raise ScheduleInputError("invalid_cron", "cron", f"{cron!r}: {ex or 'never due'}") from None
    return Timing(cron=cron, timezone=zone), {"cron": cron, "timezone": zone}


def _every_ms(every: Any) -> int:
    try:
        if isinstance(every, bool) or not isinstance(every, (str, int, float)):
            raise ValueError
        seconds = parse_duration(every).total_seconds() if isinstance(every, str) else every
        every_ms = round(seconds * 1000)
    except (ValueError, OverflowError):
        raise ScheduleInputError(
            "invalid_every", "every", "expected a duration such as 30s, 5m or 1h"
        ) from None
    if not MIN_EVERY_MS <= every_ms <= MAX_EVERY_MS:
        raise ScheduleInputError("invalid_every", "every", "expected 1s to 366d")
    return every_ms


def _template(job: Any) -> dict[str, Any]:
    """The job template, judged as POST /jobs judges a job (errors name `job.<field>`)."""
    if not isinstance(job, Mapping):
        raise ScheduleInputError("validation_error", "job", "expected a job template object")
    extra = sorted(set(job) - TEMPLATE_FIELDS)
    if extra:
        why = "not allowed in a schedule's job template" if extra[0] in SPEC_FIELDS else None
        raise ScheduleInputError("validation_error", f"job.{extra[0]}", why or "unknown field")
    try:
        spec = JobSpec.from_mapping(job)
    except ValidationError as ex:
        raise ScheduleInputError("validation_error", f"job.{ex.field}", ex.message) from None
    template: dict[str, Any] = {"type": spec.type, "payload": spec.payload, "queue": spec.queue}
    for name in ("max_attempts", "timeout"):
        if job.get(name) is not None:
            template[name] = job[name]
    if spec.priority:
        template["priority"] = spec.priority
    return template


def run_job_id(namespace: str, schedule_id: str, due_ms: int) -> str:
    """The job id of one run: the same for every firer of that run (32 hex digits, a job id)."""
    digest = hashlib.blake2b(f"{namespace}\0{schedule_id}\0{due_ms}".encode(), digest_size=16)
    return digest.hexdigest()


@dataclass(frozen=True)
class FireReport:
    fired: int
    skipped: int
    next_due_ms: int | None  # the earliest run still due later, for the firer's sleep
    more: bool = False  # the tick's bound was reached with schedules maybe still due


class ScheduleStore:
    """Every read and change of schedules in Redis; the schedule_* scripts do the writes."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self.keys = Keys(settings.namespace)
        self._prefix = self.keys.prefix
        self._put_keys = scripts.keys_for(scripts.SCRIPTS["schedule_put"].keys, self.keys)
        self._fire_keys = scripts.keys_for(scripts.SCRIPTS["schedule_fire"].keys, self.keys)
        # schedule id -> (due run, reason) last logged as refused: a run refused on every tick
        # (a queue that stays full) is logged once per process, not once a second.
        self._refusals: dict[str, tuple[str, str]] = {}

    def server_time_ms(self) -> int:
        seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    # -- definitions -------------------------------------------------------------------------

    def put(
        self, schedule_id: str, data: Any, now_ms: int | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Creates or replaces a schedule; the schedule as GET shows it and whether it is new.
        The first run follows `now_ms` (Redis server time unless given: tests move the clock)."""
        definition = Definition.from_mapping(data)
        # Schedules live in the default shard; a run for a queue of a named shard is handed
        # off through the outbox (_fire, common/outbox.py).
        created = self._write(check_schedule_id(schedule_id), definition, "", now_ms)
        return self.get(schedule_id), created

    def get(self, schedule_id: str) -> dict[str, Any]:
        data = cast(
            dict[str, str], self.redis.hgetall(self.keys.schedule(check_schedule_id(schedule_id)))
        )
        if not data:
            raise ScheduleNotFoundError(schedule_id)
        return _to_json(data)

    def list(self) -> list[dict[str, Any]]:
        """Every schedule in id order (at most MAX_SCHEDULES exist)."""
        ids = cast(
            list[str], self.redis.zrange(self.keys.schedules, 0, self.settings.max_schedules - 1)
        )
        pipe = self.redis.pipeline(transaction=False)
        for schedule_id in ids:
            pipe.hgetall(self.keys.schedule(schedule_id))
        return [_to_json(data) for data in pipe.execute() if data]

    def delete(self, schedule_id: str) -> None:
        check_schedule_id(schedule_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.keys.schedule(schedule_id))
        pipe.zrem(self.keys.schedules, schedule_id)
        pipe.zrem(self.keys.schedules_due, schedule_id)
        if not pipe.execute()[0]:
            raise ScheduleNotFoundError(schedule_id)

    def pause(self, schedule_id: str) -> dict[str, Any]:
        return self._set_paused(schedule_id, True)

    def resume(self, schedule_id: str, now_ms: int | None = None) -> dict[str, Any]:
        """Fires again from `now_ms` on: the runs that fell due while paused are not made up."""
        return self._set_paused(schedule_id, False, now_ms)

    def _set_paused(
        self, schedule_id: str, paused: bool, now_ms: int | None = None
    ) -> dict[str, Any]:
        key = self.keys.schedule(check_schedule_id(schedule_id))
        for _ in range(_CONFLICT_RETRIES):
            revision, stored = cast(
                list["str | None"], self.redis.hmget(key, ["revision", "definition"])
            )
            if revision is None or stored is None:
                raise ScheduleNotFoundError(schedule_id)
            body = {**loads(stored), "paused": paused}
            try:
                self._write(schedule_id, Definition.from_mapping(body), revision, now_ms)
            except _ConflictError:
                continue  # a PUT came in between: read it again
            return self.get(schedule_id)
        raise RuntimeError(f"schedule {schedule_id!r} kept changing; try again")

    def _write(
        self, schedule_id: str, definition: Definition, expected: str, now_ms: int | None
    ) -> bool:
        now = self.server_time_ms() if now_ms is None else now_ms
        reply = scripts.call(
            self.redis,
            "schedule_put",
            self._put_keys,
            [
                self._prefix,
                schedule_id,
                self.settings.max_schedules,
                expected,
                dumps(definition.body),
                definition.timing.signature(),
                1 if definition.paused else 0,
                definition.timing.after(now),
                now,
            ],
        )
        if reply[0] == "too_many_schedules":
            raise TooManySchedulesError(self.settings.max_schedules)
        if reply[0] == "conflict":
            raise _ConflictError()
        return bool(int(reply[1]))

    # -- firing ------------------------------------------------------------------------------

    def fire_due(self, now_ms: int | None = None, limit: int = FIRE_BATCH) -> FireReport:
        """Enqueues the runs due by `now_ms` (Redis server time unless given: tests move the
        clock) of at most `limit` schedules. Safe to call from any number of processes."""
        # One round trip when nothing is due, as on most ticks: the clock and the earliest run.
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        pipe.zrange(self.keys.schedules_due, 0, 0, withscores=True)
        (seconds, micros), earliest = pipe.execute()
        now = int(seconds) * 1000 + int(micros) // 1000 if now_ms is None else now_ms
        if not earliest or earliest[0][1] > now:
            return FireReport(0, 0, int(earliest[0][1]) if earliest else None)
        outcomes: list[str] = []
        stuck, more = 0, True
        for _ in range(FIRE_PAGES):
            # Schedules that stay due (stuck) keep the front of the index: read past them, so
            # they cannot hold back the ones behind them.
            due_ids = cast(
                list[str],
                self.redis.zrangebyscore(self.keys.schedules_due, "-inf", now, stuck, limit),
            )
            pipe = self.redis.pipeline(transaction=False)
            for schedule_id in due_ids:
                pipe.hgetall(self.keys.schedule(schedule_id))
            page = [
                self._fire(schedule_id, data, now) if data else "moved"
                for schedule_id, data in zip(due_ids, pipe.execute(), strict=True)
            ]
            outcomes += page
            stuck += sum(outcome not in _DONE for outcome in page)
            if len(due_ids) < limit:
                more = False
                break
        upcoming = self.redis.zrangebyscore(
            self.keys.schedules_due, f"({now}", "+inf", 0, 1, withscores=True
        )
        return FireReport(
            outcomes.count("fired"),
            outcomes.count("skipped"),
            int(upcoming[0][1]) if upcoming else None,
            more,
        )

    def _fire(self, schedule_id: str, data: dict[str, str], now: int) -> str:
        """One schedule's due run: its outcome (the script's answer, or "moved" / "unreadable")."""
        if data.get("paused") == "1":  # paused between our ZRANGEBYSCORE and HGETALL
            return "moved"
        try:
            due = int(data["next_run_at"])
            definition = Definition.from_mapping(loads(data["definition"]))
        except (KeyError, ValueError, ValidationError):
            log.error("schedule.unreadable", extra={"schedule_id": schedule_id})
            return "unreadable"
        if due > now:  # another firer advanced it between our ZRANGEBYSCORE and HGETALL
            return "moved"
        timing = definition.timing
        upcoming = timing.after(due)
        missed = upcoming <= now or now - due > MISSED_AFTER_MS
        run = not missed or definition.missed == "run_once"
        template = definition.template
        spec = JobSpec.from_mapping(template)
        job_id = run_job_id(self.settings.namespace, schedule_id, due)
        shard = shard_of_queue(self.settings, spec.queue)
        max_attempts = spec.max_attempts or self.settings.max_attempts
        timeout_ms = round((spec.timeout or self.settings.job_timeout.total_seconds()) * 1000)
        handoff = ""
        if shard:
            # The run lives in its queue's shard, created there by the outbox's mover with
            # this id (the shard's form of the run's id: the same for every firer).
            job_id = f"{shard}:{job_id}"
            handoff = dumps(
                {
                    "type": spec.type,
                    "queue": spec.queue,
                    "payload": spec.payload_json(),
                    "max_attempts": str(max_attempts),
                    "timeout_ms": str(timeout_ms),
                    **({"priority": str(spec.priority)} if spec.priority else {}),
                    "schedule_id": schedule_id,
                    "scheduled_for": str(due),
                    "handoff_from": f"schedule {schedule_id}",
                }
            )
        reply = scripts.call(
            self.redis,
            "schedule_fire",
            self._fire_keys,
            [
                self._prefix,
                schedule_id,
                data.get("revision", ""),
                data["next_run_at"],
                timing.following(due, now) if missed else upcoming,
                1 if run else 0,
                job_id,
                spec.type,
                spec.queue,
                spec.payload_json(),
                max_attempts,
                timeout_ms,
                self.settings.job_queue_capacity,
                self.settings.max_queues,
                self.settings.max_types,
                ",".join(self.settings.queues),
                shard,
                handoff,
                spec.priority,
            ],
        )
        outcome = str(reply[0])
        if outcome == "fired":
            log.info("schedule.fired", extra={"schedule_id": schedule_id, "job_id": job_id})
        elif outcome == "skipped":
            log.info("schedule.skipped", extra={"schedule_id": schedule_id, "due_ms": due})
        elif outcome != "stale":  # stale: another firer took this run
            if self._refusals.get(schedule_id) != (data["next_run_at"], outcome):
                if len(self._refusals) >= MAX_REFUSALS_REMEMBERED:
                    self._refusals.clear()
                self._refusals[schedule_id] = (data["next_run_at"], outcome)
                log.warning(
                    "schedule.refused",
                    extra={"schedule_id": schedule_id, "reason": outcome, "due_ms": due},
                )
        return outcome


class _ConflictError(Exception):
    pass


def _ms(raw: str | None) -> int | None:
    return int(raw) if raw else None


def _to_json(data: Mapping[str, str]) -> dict[str, Any]:
    body = loads(data.get("definition", "{}"))
    paused = data.get("paused") == "1"
    return {
        "id": data.get("id"),
        **{name: body.get(name) for name in ("cron", "timezone", "every") if name in body},
        "job": body.get("job"),
        "paused": paused,
        "missed": body.get("missed", "run_once"),
        "next_run_at": None if paused else ms_to_rfc3339(_ms(data.get("next_run_at"))),
        "last_run_at": ms_to_rfc3339(_ms(data.get("last_run_at"))),
        "last_job_id": data.get("last_job_id") or None,
        "runs": int(data.get("runs", 0)),
        "skipped": int(data.get("skipped", 0)),
        "created_at": ms_to_rfc3339(_ms(data.get("created_at"))),
        "updated_at": ms_to_rfc3339(_ms(data.get("updated_at"))),
    }
