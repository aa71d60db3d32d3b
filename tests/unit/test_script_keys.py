"""One source of truth for keys and states: the Lua scripts spell no key, declare every fixed key
they touch in their header's KEYS contract (which is what JobStore passes, see
common.scripts.keys_for), and check the source states common/states.py gives them."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from workstream.common.keys import Keys
from workstream.common.scripts import (
    ALL_STATUSES,
    BUILDERS,
    EACH_QUEUE,
    SCRIPT_NAMES,
    SCRIPTS,
    key_specs,
    keys_for,
)
from workstream.common.states import TRANSITIONS, JobStatus

FOLDER = resources.files("workstream.common").joinpath("scripts")
LUA_FILES = sorted(entry.name for entry in FOLDER.iterdir() if entry.name.endswith(".lua"))
# Every segment common/keys.py puts after the prefix, e.g. 'job:' or 'stats'.
SEGMENTS = (
    "job|queue|processing|worker|scheduled|dead|status|idem|types"
    "|workers|queues|paused|stats|inflight|jobs|expiries|deadlines|lock"
)


def _code(text: str) -> str:
    """The Lua without its comments."""
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


@pytest.mark.parametrize("name", LUA_FILES)
def test_no_script_spells_a_key(name: str) -> None:
    code = _code(FOLDER.joinpath(name).read_text(encoding="utf-8"))
    assert "P .." not in code, "keys are built by key_<name>() rendered from common/keys.py"
    assert not re.findall(rf"'(?:{SEGMENTS}):", code)
    assert not re.findall(rf"'(?:{SEGMENTS}:?)' \.\.", code)


@pytest.mark.parametrize("name", sorted(SCRIPT_NAMES))
def test_every_key_a_script_uses_is_declared_in_its_header(name: str) -> None:
    script = SCRIPTS[name]
    body = FOLDER.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    assert "KEYS[" not in _code(body), "name keys by their KEY_<name> local, not by position"
    rendered = _code(script.source)
    declared = {spec.split(":")[0] for spec in script.keys if spec != ALL_STATUSES}
    used = set(re.findall(r"\bKEY_([a-z_]+)\b", rendered))
    assert used <= declared, f"{name} uses undeclared keys {sorted(used - declared)}"
    if "STATUS_KEY[" in rendered or "pairs(STATUS_KEY)" in rendered:
        assert ALL_STATUSES in script.keys, name
    builders = set(re.findall(r"\bkey_([a-z_]+)\(", rendered))
    assert builders <= set(BUILDERS)
    if "QUEUE_KEYS_FROM +" in rendered:  # claim_into: the queue lists come in KEYS
        assert EACH_QUEUE in script.keys, name


@pytest.mark.parametrize("name", sorted(SCRIPT_NAMES))
def test_every_declared_key_is_built_by_common_keys(name: str) -> None:
    keys = Keys("ns")
    queues = ("high", "low")
    built = keys_for(
        SCRIPTS[name].keys, keys, queues, job_id="J", worker_id="W", queue="Q", key="K"
    )
    assert all(key.startswith(keys.prefix) for key in built)
    widths = {ALL_STATUSES: len(JobStatus), EACH_QUEUE: len(queues)}
    assert len(built) == len(set(built)) == sum(widths.get(s, 1) for s in SCRIPTS[name].keys)
    assert f"local KEY_{SCRIPTS[name].keys[0].split(':')[0]} = KEYS[1]" in SCRIPTS[name].source


def test_a_header_out_of_order_is_refused() -> None:
    with pytest.raises(AssertionError):
        key_specs("-- x: y\n-- KEYS[1] stats  KEYS[3] jobs\n-- ARGV[1] prefix\n")


@pytest.mark.parametrize("name", sorted(TRANSITIONS))
def test_each_transition_checks_the_source_states_from_the_table(name: str) -> None:
    sources = TRANSITIONS[name].sources
    members = ", ".join(f"{s.value} = true" for s in JobStatus if s in sources)
    source = SCRIPTS[name].source
    if name in {"enqueue", "recover", "release", "claim", "start", "lease"}:
        # enqueue has none; recover and release branch per source state; claim, start and
        # lease start ids through start_ids, which checks START_SOURCES (the same row as start).
        assert "START_SOURCES[" in source or name in {"enqueue", "recover", "release"}
        return
    assert f"local SOURCES = {{{members}}}\n" in source
    assert "SOURCES[" in _code(FOLDER.joinpath(f"{name}.lua").read_text(encoding="utf-8"))
