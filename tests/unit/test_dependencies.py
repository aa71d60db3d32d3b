"""depends_on without Redis: the order a submission is created in (parents first), the cycles
it refuses, the spec's checks, and how the client and the CLI carry and show dependencies."""

from __future__ import annotations

import pytest

from workstream.cli import tables
from workstream.client.calls import JobRequest
from workstream.client.models import Job
from workstream.common.deps import submission_order
from workstream.common.errors import DependencyError, ValidationError
from workstream.common.jobs import MAX_DEPENDS_ON, JobSpec


def _spec(job_id: str, *parents: str) -> JobSpec:
    return JobSpec.from_mapping(
        {"type": "t", "id": job_id, **({"depends_on": list(parents)} if parents else {})}
    )


def _order(*specs: JobSpec) -> list[str]:
    ids = [spec.id or "" for spec in specs]
    return [ids[i] for i in submission_order(ids, list(specs))]


def test_jobs_without_dependencies_keep_their_order() -> None:
    assert _order(_spec("b"), _spec("a"), _spec("c")) == ["b", "a", "c"]


def test_parents_of_the_same_submission_come_first() -> None:
    order = _order(_spec("d", "c", "b"), _spec("c", "a"), _spec("b", "a"), _spec("a"))
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("a") < order.index("c") < order.index("d")


def test_parents_outside_the_submission_do_not_order_it() -> None:
    assert _order(_spec("x", "elsewhere"), _spec("y")) == ["x", "y"]


def test_a_cycle_is_named_in_cycle_order() -> None:
    with pytest.raises(DependencyError) as caught:
        _order(_spec("free"), _spec("a", "b"), _spec("b", "c"), _spec("c", "a"))
    assert caught.value.code == "dependency_cycle"
    ids = caught.value.ids
    assert sorted(ids) == ["a", "b", "c"] and "free" not in ids


def test_a_job_depending_on_itself_is_a_cycle() -> None:
    with pytest.raises(DependencyError) as caught:
        _order(_spec("me", "me"))
    assert caught.value.ids == ["me"]


def test_a_long_chain_orders_without_recursion() -> None:
    specs = [_spec(f"j{i}", f"j{i - 1}") for i in range(1, 5000)] + [_spec("j0")]
    order = _order(*reversed(specs))
    assert order == [f"j{i}" for i in range(5000)]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"depends_on": "a"}, "depends_on"),
        ({"depends_on": []}, "depends_on"),
        ({"depends_on": ["a", "a"]}, "depends_on"),
        ({"depends_on": ["bad id"]}, "depends_on"),
        ({"depends_on": [1]}, "depends_on"),
        ({"depends_on": ["a"], "on_parent_failure": None}, "on_parent_failure"),
        ({"depends_on": [f"p{i}" for i in range(MAX_DEPENDS_ON + 1)]}, "depends_on"),
        ({"depends_on": ["a"], "on_parent_failure": "skip"}, "on_parent_failure"),
        ({"on_parent_failure": "run"}, "on_parent_failure"),
        ({"depends_on": ["a"], "delay": 1}, "depends_on"),
        ({"id": ""}, "id"),
        ({"id": "a/b"}, "id"),
    ],
)
def test_bad_dependency_fields_name_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        JobSpec.from_mapping({"type": "t", **fields})
    assert caught.value.field == field


def test_the_fingerprint_covers_dependencies_but_not_the_id() -> None:
    base = JobSpec.from_mapping({"type": "t", "id": "x"}).fingerprint()
    assert JobSpec.from_mapping({"type": "t", "id": "y"}).fingerprint() == base
    assert JobSpec.from_mapping({"type": "t"}).fingerprint() == base  # unchanged without them
    child = JobSpec.from_mapping({"type": "t", "depends_on": ["a"]}).fingerprint()
    run = JobSpec.from_mapping(
        {"type": "t", "depends_on": ["a"], "on_parent_failure": "run"}
    ).fingerprint()
    assert len({base, child, run}) == 3


def test_the_client_sends_id_and_dependencies() -> None:
    body = JobRequest("t", id="b", depends_on=("a",), on_parent_failure="run").to_json()
    assert body["id"] == "b" and body["depends_on"] == ["a"]
    assert body["on_parent_failure"] == "run"
    plain = JobRequest("t").to_json()
    assert "id" not in plain and "depends_on" not in plain


def test_the_client_reads_parents_and_children() -> None:
    job = Job.from_json(
        {"id": "b", "status": "waiting", "depends_on": ["a"], "children": ["c"],
         "children_count": 3, "on_parent_failure": "cancel"}
    )  # fmt: skip
    assert job.depends_on == ("a",) and job.children == ("c",) and job.children_count == 3
    assert not job.finished


def test_the_cli_shows_parents_children_and_what_is_left() -> None:
    text = tables.job_detail(
        {"id": "b", "status": "waiting", "depends_on": ["a1", "a2"], "parents_left": 1,
         "on_parent_failure": "run", "children": ["c1"], "children_count": 2}
    )  # fmt: skip
    assert "a1, a2 (on_parent_failure: run)" in text
    assert "parents_left" in text and "c1 … (2 in all)" in text


def test_the_queues_table_grows_a_waiting_column_once_jobs_wait() -> None:
    quiet = [{"name": "q", "pending": 1, "processing": 0, "scheduled": 0, "failed": 0}]
    assert "WAITING" not in tables.queues_table(quiet)
    busy = [{**quiet[0], "waiting": 7}]
    header, row = tables.queues_table(busy).splitlines()[:2]
    assert header.split()[4] == "WAITING" and row.split()[4] == "7"


def test_workstream_submit_takes_an_id_and_parents() -> None:
    from workstream.cli.commands import build_parser, job_request

    args = build_parser().parse_args(
        ["submit", "report", "--id", "r1", "--depends-on", "a,b", "--depends-on", "c",
         "--on-parent-failure", "run"]
    )  # fmt: skip
    request = job_request(args)
    assert request.id == "r1" and list(request.depends_on or ()) == ["a", "b", "c"]
    assert request.on_parent_failure == "run"
    plain = job_request(build_parser().parse_args(["submit", "report"]))
    assert plain.id is None and plain.depends_on is None and plain.on_parent_failure is None
