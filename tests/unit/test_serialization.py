"""common.serialization: orjson where it writes what the standard encoder would, the standard
encoder everywhere else, and the same values accepted and rejected on both paths."""

import dataclasses
import enum
import json
import uuid
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workstream.common.jobs import JobSpec
from workstream.common.serialization import (
    MAX_NESTING,
    dumps,
    dumps_reply,
    loads,
    ms_to_rfc3339,
    nests_too_deep,
)


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize(
    "value",
    [
        {"v": float("nan")},
        {"v": float("inf")},
        [float("-inf")],
        {"v": float("nan"), "beside": None},  # output with a null takes the standard encoder
        {"v": float("nan"), "big": 2**70},  # orjson declines the big integer
    ],
)
def test_non_finite_floats_are_rejected_on_every_path(value: object) -> None:
    with pytest.raises(ValueError):
        dumps(value)


def test_nulls_are_written_as_null() -> None:
    assert dumps({"a": None, "b": [None]}) == '{"a":null,"b":[null]}'


def test_integers_beyond_64_bits_keep_every_digit() -> None:
    assert json.loads(dumps({"id": 2**70 + 1})) == {"id": 2**70 + 1}


def test_non_string_keys_become_strings_as_in_the_standard_library() -> None:
    assert dumps({1: "a", 2.5: "b", None: "c"}) == '{"1":"a","2.5":"b","null":"c"}'


@pytest.mark.parametrize("beside", [1, None])  # without a null: orjson; with one: the stdlib
def test_uuids_and_enums_are_written_the_same_on_both_paths(beside: object) -> None:
    job_ref = uuid.UUID(int=7)
    value = {"ref": job_ref, "colour": Colour.RED, "level": Level.HIGH, "x": beside}
    assert json.loads(dumps(value)) == {
        "ref": str(job_ref),
        "colour": "red",
        "level": 3,
        "x": beside,
    }


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize("beside", [1, None])
@pytest.mark.parametrize("odd", [datetime(2026, 1, 1, tzinfo=timezone.utc), Point(1), {1, 2}])
def test_types_json_has_no_spelling_for_are_rejected_on_both_paths(
    odd: object, beside: object
) -> None:
    with pytest.raises(TypeError):
        dumps({"value": odd, "x": beside})


def test_text_is_written_as_utf8_not_escaped() -> None:
    assert dumps({"name": "Zoë ☃"}) == '{"name":"Zoë ☃"}'


def test_a_lone_surrogate_is_refused_before_it_reaches_redis() -> None:
    with pytest.raises(Exception, match="payload"):
        JobSpec(type="x", payload={"s": "\ud800"}).payload_json()


def test_a_reply_is_compact_utf8_json_with_its_nulls() -> None:
    body = {"id": "a" * 32, "result": None, "name": "Zoë"}
    assert dumps_reply(body) == '{"id":"%s","result":null,"name":"Zoë"}'.encode() % (b"a" * 32)


@pytest.mark.parametrize("body", [{"n": 2**70, "x": None}, {"field": "\ud800"}])
def test_a_reply_orjson_declines_is_still_json_of_the_same_value(body: dict[str, object]) -> None:
    assert json.loads(dumps_reply(body)) == body


def nested(depth: int, leaf: object = 0) -> object:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("leaf", [0, None, 2**70])  # orjson; the stdlib after a null; declined
def test_a_value_nested_exactly_max_nesting_deep_is_written(leaf: object) -> None:
    assert json.loads(dumps(nested(MAX_NESTING, leaf))) == nested(MAX_NESTING, leaf)


@pytest.mark.parametrize("leaf", [0, None, 2**70])
@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 300, 5000])  # 300: past orjson's own limit
def test_a_value_nested_deeper_than_max_nesting_is_a_value_error(leaf: object, depth: int) -> None:
    with pytest.raises(ValueError, match="nest"):
        dumps(nested(depth, leaf))


def test_a_wide_value_with_many_brackets_in_its_strings_is_not_mistaken_for_deep() -> None:
    value = {"text": "[" * 1000, "rows": [[i] for i in range(200)]}
    assert json.loads(dumps(value)) == value


def test_a_value_that_contains_itself_is_a_value_error() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError):
        dumps(loop)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (253402300800000, "9999-12-31T23:59:59.999Z"),
        (10**30, "9999-12-31T23:59:59.999Z"),
        (-62135596800001, "0001-01-01T00:00:00.000Z"),
        (-(10**30), "0001-01-01T00:00:00.000Z"),
        (253402300799999, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_a_time_outside_what_rfc3339_can_spell_is_written_clamped(ms: int, text: str) -> None:
    assert ms_to_rfc3339(ms) == text


@pytest.mark.parametrize("text", ['a"[[[[', "\\", '\\"{{{{', "]]]]"])
def test_brackets_and_escaped_quotes_inside_strings_do_not_count_as_nesting(text: str) -> None:
    value = nested(MAX_NESTING - 1, [text] * 40)
    assert json.loads(dumps(value)) == value


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:\né'),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, limit=st.integers(0, 4), ascii=st.booleans())
def test_nesting_judged_on_the_text_agrees_with_the_value(
    value: object, limit: int, ascii: bool
) -> None:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=ascii).encode()
    assert nests_too_deep(text, limit) == (depth_of(value) > limit)


@pytest.mark.parametrize(
    "text",
    ['{"n": 123456789012345678901234567890}', '["\\udcff"]', '{"a": [1.5, -0.0, 1e308]}'],
)
def test_loads_reads_what_json_allows_beyond_orjson_as_the_standard_library_does(
    text: str,
) -> None:
    assert loads(text) == json.loads(text)


def test_loads_still_rejects_text_that_is_not_json() -> None:
    with pytest.raises(ValueError):
        loads("{not json")
