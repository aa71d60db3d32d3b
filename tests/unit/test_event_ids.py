"""Event ids (common/events.py): one stream id, or one position per shard for a merged stream;
the CLI passes either through unchanged."""

from __future__ import annotations

import pytest

from workstream.cli.events import since_position
from workstream.common.events import MalformedEventId, format_positions, parse_positions


def test_a_bare_id_is_the_default_shards_position() -> None:
    assert parse_positions("5-1") == {"": "5-1"}
    assert parse_positions(" 5-1 ") == {"": "5-1"}


def test_a_time_alone_is_a_position_just_before_it() -> None:
    assert parse_positions("0") == {"": "0-0"}
    assert parse_positions("7") == {"": f"6-{2**64 - 1}"}


def test_a_composite_id_gives_each_shard_its_position_and_formats_back_unchanged() -> None:
    text = "5-1,a=4-0,b_2=6-3"
    assert parse_positions(text) == {"": "5-1", "a": "4-0", "b_2": "6-3"}
    assert format_positions(parse_positions(text)) == text
    assert parse_positions("a=9") == {"a": f"8-{2**64 - 1}"}  # a time for one shard


def test_without_shards_the_formatted_id_is_the_stream_id_itself() -> None:
    assert format_positions({"": "1733245200000-0"}) == "1733245200000-0"


@pytest.mark.parametrize(
    "bad", ["", "1-0,", "a=", "=1-0", "1-0,2-0", "a=1-0,a=2-0", "A=1-0", "a=1-0, b=2-0", "a:1-0"]
)
def test_malformed_composite_ids_are_refused(bad: str) -> None:
    with pytest.raises(MalformedEventId):
        parse_positions(bad)


def test_the_cli_passes_a_composite_id_through_unchanged() -> None:
    text = "1733245200000-0,a=1733245199990-3,b=1733245200001-0"
    assert since_position(text, lambda: 0) == text
