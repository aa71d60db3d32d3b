"""The README tells the truth: its tables are checked against the code they describe."""

from __future__ import annotations

import re
from pathlib import Path

from workstream.common.keys import Keys, group_ref
from workstream.common.settings import SETTING_DOCS
from workstream.common.states import JobStatus

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _section(marker: str) -> str:
    start = README.index(f"<!-- {marker}")
    return README[start : README.index(f"<!-- /{marker} -->")]


def test_the_configuration_table_matches_the_settings_code() -> None:
    rows = re.findall(r"^\| `([A-Z_]+)` \| (.+?) \| (.+?) \|$", _section("settings-table"), re.M)
    documented = {name: (default, meaning) for name, default, meaning in rows}
    assert list(documented) == [doc.name for doc in SETTING_DOCS]
    for doc in SETTING_DOCS:
        default, meaning = documented[doc.name]
        assert default == (f"`{doc.default}`" if doc.default else "*(empty)*"), doc.name
        assert meaning == doc.meaning, doc.name


def test_the_key_table_lists_every_key_the_code_builds() -> None:
    table = _section("key-table")
    keys = Keys("ns")
    built = {
        keys.job("<id>"),
        keys.queue("<name>"),
        keys.processing("<worker>"),
        keys.worker("<worker>"),
        keys.scheduled("<name>"),
        keys.dead("<name>"),
        keys.types("<name>"),
        keys.idempotency("<key>"),
        keys.limits("<name>"),
        keys.groups("<name>"),
        keys.waiting(group_ref("<name>", "<group>")),
        keys.priority("<name>"),
        keys.dependents("<id>"),
        keys.remote_children("<id>"),
        keys.awaiting("<name>"),
        keys.unique("<key>"),
        keys.expiring,
        keys.schedule("<id>"),
        keys.schedules,
        keys.schedules_due,
        keys.timeline(0).removesuffix("0") + "<minute>",
        keys.status(JobStatus.PENDING).replace("pending", "<status>"),
        keys.workers,
        keys.queues,
        keys.paused,
        keys.stats,
        keys.inflight,
        keys.jobs,
        keys.expiries,
        keys.deadlines,
        keys.sweeper_lock,
        keys.shards,
        keys.outbox,
        keys.outbox_body,
        keys.handoff("<key>"),
        keys.events,
        keys.events_max,
        keys.batch("<id>"),
        keys.batch_jobs("<id>"),
        keys.batches,
        keys.batch_expiries,
    }
    documented = set(re.findall(r"^\| `(ws:\{ns\}:[^`]+)` \|", table, re.M))
    assert documented == built


def test_the_quick_start_shows_the_two_commands() -> None:
    quick_start = README[README.index("## Quick start") : README.index("## Using the API")]
    assert "make run" in quick_start and "make test" in quick_start


def test_every_route_has_a_curl_example() -> None:
    api = README[README.index("## Using the API") : README.index("## The operator CLI")]
    for route in [
        "/jobs/batch",
        "/jobs/<job-id>?wait=",
        "/jobs?status=",
        "/jobs/<job-id>/cancel",
        "/jobs/<job-id>/retry",
        "-X DELETE $API/jobs/<job-id>",
        "/queues/default/pause",
        "/queues/default/resume",
        "/queues/default/failed/retry",
        "/queues/default/failed/purge",
        "/workers",
        "/metrics",
        "/health",
        "/openapi.json",
        "$API/job ",
        "/status/<job-id>",
        "/result/<job-id>",
    ]:
        assert route in api, route
