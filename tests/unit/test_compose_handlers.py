"""The README's way to bring your own handlers into docker compose works by construction: its
override file mounts the package into a directory the image puts on PYTHONPATH, and a worker
given that PYTHONPATH and WORKER_HANDLERS imports the README's own handler module."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from tests.unit.test_deploy_files import final_stage, service

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
OVERRIDE = re.compile(
    r"<!-- compose-handlers: docker-compose.override.yml -->\n```yaml\n(.*?)```", re.S
)
HANDLER_STEP = re.compile(r"<!-- first-handler: step 1, terminal 2 -->\n```sh\n(.*?)```", re.S)


def override() -> dict[str, Any]:
    found = OVERRIDE.search(README)
    assert found, "the README lost its compose-handlers block"
    loaded = yaml.safe_load(found.group(1))
    assert isinstance(loaded, dict)
    return loaded


def image_pythonpath() -> list[str]:
    """PYTHONPATH as the Dockerfile's runtime stage sets it."""
    for keyword, rest in final_stage():
        if keyword == "ENV":
            found = re.search(r"\bPYTHONPATH=(\S+)", rest)
            if found:
                return found.group(1).split(":")
    raise AssertionError("the image sets no PYTHONPATH")


def mounts() -> list[tuple[str, PurePosixPath]]:
    """(host source, container target) of the override's worker volumes."""
    volumes = override()["services"]["worker"]["volumes"]
    return [(str(v).split(":")[0], PurePosixPath(str(v).split(":")[1])) for v in volumes]


def test_the_override_only_adds_volumes_to_the_compose_worker() -> None:
    assert set(override()["services"]) == {"worker"}
    assert set(override()["services"]["worker"]) == {"volumes"}
    assert service("worker")["image"] == service("api")["image"]  # the image built by compose


def test_the_override_mounts_a_relative_package_read_only_under_the_image_pythonpath() -> None:
    ((source, target),) = mounts()
    assert source.startswith("./")
    assert str(override()["services"]["worker"]["volumes"][0]).endswith(":ro")
    assert str(target.parent) in image_pythonpath()
    assert target.name == PurePosixPath(source).name


def test_a_worker_with_that_pythonpath_registers_the_readme_handler(tmp_path: Path) -> None:
    step = HANDLER_STEP.search(README)
    assert step, "the README lost its first-handler step 1"
    subprocess.run(["bash", "-e", "-c", step.group(1)], cwd=tmp_path, check=True, timeout=30)
    ((source, target),) = mounts()
    handlers = tmp_path / "opt-handlers"  # stands for the mount's parent, /opt/handlers
    handlers.mkdir()
    (tmp_path / source).rename(handlers / target.name)
    probe = (
        "from workstream.worker.registry import load_modules, registered_types; "
        "load_modules(['myapp.jobs']); print(registered_types())"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(handlers)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "'greet'" in done.stdout
