"""/schedules: jobs created on a cron expression or every interval (common/schedules.py)."""

from __future__ import annotations

from typing import Any

import falcon

from workstream.api import validation
from workstream.api.errors import ApiError
from workstream.common.schedules import (
    ScheduleInputError,
    ScheduleNotFoundError,
    ScheduleStore,
    TooManySchedulesError,
)

App = falcon.App[falcon.Request, falcon.Response]


class ScheduleCollection:
    def __init__(self, schedules: ScheduleStore) -> None:
        self._schedules = schedules

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"schedules": self._schedules.list()}


class ScheduleItem:
    """PUT creates or replaces (201 + Location when new, 200 when replaced); nothing is written
    when the body is refused."""

    def __init__(self, schedules: ScheduleStore) -> None:
        self._schedules = schedules
        self._limit = schedules.settings.max_payload_bytes

    def on_get(self, req: falcon.Request, resp: falcon.Response, schedule_id: str) -> None:
        resp.media = self._schedules.get(schedule_id)

    def on_put(self, req: falcon.Request, resp: falcon.Response, schedule_id: str) -> None:
        body = validation.read_json(req, self._limit)
        resp.media, created = self._schedules.put(schedule_id, body)
        if created:
            resp.status = falcon.HTTP_201
            resp.location = f"/schedules/{schedule_id}"

    def on_delete(self, req: falcon.Request, resp: falcon.Response, schedule_id: str) -> None:
        self._schedules.delete(schedule_id)
        resp.status = falcon.HTTP_204

    def on_post_pause(self, req: falcon.Request, resp: falcon.Response, schedule_id: str) -> None:
        resp.media = self._schedules.pause(schedule_id)

    def on_post_resume(self, req: falcon.Request, resp: falcon.Response, schedule_id: str) -> None:
        resp.media = self._schedules.resume(schedule_id)


def _input(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    assert isinstance(ex, ScheduleInputError)
    raise ApiError(400, ex.code, str(ex), field=ex.field)


def _not_found(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    raise ApiError(404, "schedule_not_found", str(ex))


def _too_many(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    raise ApiError(409, "too_many_schedules", str(ex))


def add_schedule_routes(app: App, schedules: ScheduleStore) -> None:
    """The routes and their errors (ScheduleInputError is a ValidationError: Falcon picks the
    most specific handler, so its own code wins over validation_error)."""
    app.add_error_handler(ScheduleInputError, _input)
    app.add_error_handler(ScheduleNotFoundError, _not_found)
    app.add_error_handler(TooManySchedulesError, _too_many)
    item = ScheduleItem(schedules)
    app.add_route("/schedules", ScheduleCollection(schedules))
    app.add_route("/schedules/{schedule_id}", item)
    app.add_route("/schedules/{schedule_id}/pause", item, suffix="pause")
    app.add_route("/schedules/{schedule_id}/resume", item, suffix="resume")
