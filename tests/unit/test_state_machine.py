from importlib import resources

from workstream.common.keys import Keys
from workstream.common.scripts import MAINTENANCE_SCRIPTS, SCRIPTS
from workstream.common.states import TERMINAL, TRANSITIONS, JobStatus, allowed


def _lua_stems() -> set[str]:
    folder = resources.files("workstream.common").joinpath("scripts")
    return {
        entry.name.removesuffix(".lua")
        for entry in folder.iterdir()
        if entry.name.endswith(".lua") and not entry.name.startswith("_")
    }


def test_every_transition_has_one_lua_script_and_every_script_a_purpose() -> None:
    assert _lua_stems() == set(TRANSITIONS) | MAINTENANCE_SCRIPTS


def test_every_script_opens_with_its_contract() -> None:
    for name in _lua_stems():
        text = (
            resources.files("workstream.common")
            .joinpath("scripts")
            .joinpath(f"{name}.lua")
            .read_text()
        )
        assert text.startswith(f"-- {name}:"), name
        assert "KEYS[1]" in text and "ARGV[1] prefix" in text, name


def test_scripts_render_the_status_names_from_python() -> None:
    for status in JobStatus:
        assert f"'{status.value}'" in SCRIPTS["claim"].source


def test_terminal_states_have_no_way_out_but_retry_of_failed_and_delete() -> None:
    for name, transition in TRANSITIONS.items():
        if transition.sources & TERMINAL:
            assert name in {"retry", "delete"}


def test_only_jobs_that_have_not_ended_can_be_cancelled() -> None:
    cancellable = {status for status in JobStatus if allowed("cancel", status)}
    assert cancellable == {
        JobStatus.PENDING,
        JobStatus.SCHEDULED,
        JobStatus.PROCESSING,
        JobStatus.WAITING,
    }


def test_all_keys_share_the_namespace_hash_tag() -> None:
    keys = Keys("shop")
    built = [
        keys.job("a"),
        keys.queue("q"),
        keys.processing("w"),
        keys.worker("w"),
        keys.scheduled("q"),
        keys.dead("q"),
        keys.status(JobStatus.PENDING),
        keys.idempotency("k"),
        keys.types("q"),
        keys.workers,
        keys.queues,
        keys.paused,
        keys.stats,
        keys.inflight,
        keys.jobs,
        keys.expiries,
        keys.deadlines,
        keys.sweeper_lock,
    ]
    assert all(key.startswith("ws:{shop}:") for key in built)
    assert len(set(built)) == len(built)
