"""Reading GET /events (Server-Sent Events) with the blocking client: `Client.events()`.

The API answers each request with one batch of events (or a heartbeat when none came within
its EVENTS_HOLD) and ends the response; every response's last message carries the position to
resume from. Following the stream is asking again with that position as Last-Event-ID, which
is what EventSource does by itself and what follow() does here."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from workstream.client import calls
from workstream.client.calls import RetryPolicy
from workstream.client.errors import ApiError


@dataclass(frozen=True)
class StreamEvent:
    """One message: `event` its name (a transition, or `gap`), `data` its JSON, `id` its
    position (None for a gap notice)."""

    event: str
    data: Mapping[str, Any]
    id: str | None = None


@dataclass
class Batch:
    events: list[StreamEvent] = field(default_factory=list)
    last_id: str | None = None  # where to resume: the position the response ended at
    more: bool = False  # the response was cut short: more is there already


def parse(text: str) -> Batch:
    """The messages of one text/event-stream body (comments and bare `id:`/`retry:` lines only
    move the position)."""
    batch = Batch()
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith(":"):
                batch.more = batch.more or line[1:].strip() == "more"
                continue
            if not line:
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
        if "id" in fields:
            batch.last_id = fields["id"]
        if data:
            try:
                body = json.loads("\n".join(data))
            except ValueError:
                body = {"text": "\n".join(data)}
            batch.events.append(StreamEvent(fields.get("event", "message"), body, fields.get("id")))
    return batch


def follow(
    http: httpx.Client,
    url: str,
    retry_policy: RetryPolicy,
    timeout: float,
    *,
    params: Mapping[str, str],
    since: str | None,
    follow: bool,
) -> Iterator[StreamEvent]:
    """Every event after `since` (None: from now on) matching `params`; with `follow`
    forever, else until a response brings nothing new. 503 (too_many_streams, Redis) and
    lost connections are retried by `retry_policy` before they raise."""
    position = since
    failures = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if position:
            headers["Last-Event-ID"] = position
        try:
            response = http.get("/events", params=dict(params), headers=headers, timeout=timeout)
            if response.status_code >= 400:
                data = None
                try:
                    data = json.loads(response.content)
                except ValueError:
                    pass
                raise calls.error_from(response.status_code, data, response.text, response.headers)
        except (ApiError, httpx.TransportError) as ex:
            failures += 1
            retryable = isinstance(ex, httpx.TransportError) or ex.status == 503
            if not retryable or failures >= retry_policy.attempts:
                if isinstance(ex, httpx.TransportError):
                    raise calls.transport_error(url, ex) from None
                raise
            retry_after = ex.retry_after if isinstance(ex, ApiError) else None
            time.sleep(retry_policy.pause(failures, retry_after))
            continue
        failures = 0
        batch = parse(response.text)
        yield from batch.events
        if batch.last_id:
            position = batch.last_id
        if not follow and not batch.more and not any(e.id for e in batch.events):
            return
