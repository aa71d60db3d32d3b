"""Keeps the deployment files honest without a Docker engine: Dockerfile, .dockerignore,
docker-compose.yml, Prometheus config and the Grafana dashboard are parsed and checked against
the settings table, the console scripts in pyproject.toml and the documented metric names."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from workstream.api.validation import MAX_WAIT_S
from workstream.common.durations import parse_duration
from workstream.common.redis_conn import parse_sentinel_url
from workstream.common.settings import SETTING_DOCS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS = ROOT / "monitoring" / "prometheus.yml"
GRAFANA = ROOT / "monitoring" / "grafana"
DASHBOARD = GRAFANA / "workstream.json"

# Settings that describe the compose network itself, so compose fixes them instead of passing
# them through: value per service that sets them.
FIXED_SETTINGS = {"REDIS_URL": "${WORKSTREAM_REDIS_URL:-redis://redis:6379/0}", "HOST": "0.0.0.0"}
# Variables compose interpolates that are not WorkStream settings (host ports, Grafana login).
COMPOSE_ONLY_VARIABLES = {
    "API_PORT",
    "PROMETHEUS_PORT",
    "GRAFANA_PORT",
    "GRAFANA_ADMIN_PASSWORD",
    "PUBLISH_HOST",
    "WORKSTREAM_REDIS_URL",  # the sentinel profile's URL for REDIS_URL (default: the redis service)
}
# Mirrors "Prometheus metric names" in the contract (histograms by their base name).
CONTRACT_METRICS = {
    "workstream_jobs_created_total",
    "workstream_jobs_completed_total",
    "workstream_jobs_failed_total",
    "workstream_jobs_retried_total",
    "workstream_jobs_recovered_total",
    "workstream_jobs_cancelled_total",
    "workstream_stale_completions_total",
    "workstream_queue_pending",
    "workstream_queue_processing",
    "workstream_queue_scheduled",
    "workstream_queue_failed",
    "workstream_queue_paused",
    "workstream_workers_live",
    "workstream_job_wait_seconds",
    "workstream_job_run_seconds",
}
HISTOGRAMS = ("workstream_job_wait_seconds", "workstream_job_run_seconds")
# `${NAME...}` but not `$${NAME}`, compose's escape for a variable the container's shell expands.
INTERPOLATION = re.compile(
    r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}"
)
METRIC_TOKEN = re.compile(r"workstream_[a-z_]+")
COMPOSE_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
DURATION_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


# ---- helpers -----------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yml has no {name!r} service"
    found = services[name]
    assert isinstance(found, dict)
    return found


def environment(name: str) -> dict[str, str]:
    """A service's environment as a dict, whichever of compose's two spellings it uses."""
    env = service(name).get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def resolve_defaults(text: str) -> str:
    """What compose would produce with no variables set: each `${NAME:-default}` -> default."""
    return INTERPOLATION.sub(lambda m: m["arg"] if m["op"] in (":-", "-") else "", text)


def command_words(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else list(value)


def compose_duration_s(text: str) -> float:
    """Compose durations are Go-style: '35s', '1m30s', '500ms'."""
    assert re.fullmatch(rf"(?:{COMPOSE_DURATION.pattern})+", text), f"not a duration: {text!r}"
    return sum(float(n) * DURATION_UNITS_S[unit] for n, unit in COMPOSE_DURATION.findall(text))


@cache
def console_scripts() -> frozenset[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return frozenset(project["scripts"])


def setting_defaults() -> dict[str, str]:
    return {doc.name: doc.default for doc in SETTING_DOCS}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def exec_form(arguments: str) -> list[str]:
    parsed = json.loads(arguments)
    assert isinstance(parsed, list), f"expected exec form, got {arguments!r}"
    return [str(word) for word in parsed]


@cache
def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def dashboard_queries() -> list[str]:
    """Every PromQL expression: panel targets and template variable queries."""
    queries = [
        str(target["expr"])
        for panel in walk_panels(dashboard()["panels"])
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in dashboard().get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            queries.append(str(query["query"] if isinstance(query, dict) else query))
    return queries


def queried_metrics() -> set[str]:
    tokens = {token for query in dashboard_queries() for token in METRIC_TOKEN.findall(query)}
    return {re.sub(r"_(bucket|sum|count)$", "", token) for token in tokens}


def yaml_files(folder: Path) -> list[dict[str, Any]]:
    files = sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])
    assert files, f"no provisioning files in {folder}"
    return [yaml.safe_load(path.read_text()) for path in files]


def bind_mounts(name: str) -> dict[str, str]:
    """Short-syntax bind mounts of a service: container path -> host path."""
    mounts = {}
    for volume in service(name).get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = source
    return mounts


# ---- docker-compose.yml ------------------------------------------------------------------------


def test_compose_defines_redis_api_and_worker_services() -> None:
    assert {"redis", "api", "worker"} <= set(compose()["services"])


def test_worker_has_no_container_name_and_no_ports_so_it_scales() -> None:
    worker = service("worker")
    assert "container_name" not in worker
    assert "ports" not in worker


def test_worker_stop_grace_period_exceeds_the_shutdown_grace_default() -> None:
    grace = parse_duration(setting_defaults()["SHUTDOWN_GRACE"]).total_seconds()
    assert compose_duration_s(str(service("worker")["stop_grace_period"])) > grace


def test_worker_is_stopped_with_sigterm() -> None:
    assert service("worker").get("stop_signal", "SIGTERM") == "SIGTERM"


def test_worker_healthcheck_runs_the_heartbeat_check_module() -> None:
    check = service("worker")["healthcheck"]
    words = command_words(check["test"])
    assert words == ["CMD", "python", "-m", "workstream.worker.check"]
    assert (ROOT / "worker" / "check.py").exists()
    assert "disable" not in check


def test_api_stop_grace_period_outlasts_the_longest_long_poll() -> None:
    assert compose_duration_s(str(service("api")["stop_grace_period"])) > MAX_WAIT_S


def test_redis_is_redis_7_with_aof_fsynced_every_second() -> None:
    redis = service("redis")
    assert str(redis["image"]).startswith("redis:7")
    words = command_words(redis["command"])
    assert words[words.index("--appendonly") + 1] == "yes"
    assert words[words.index("--appendfsync") + 1] == "everysec"


def test_redis_data_is_a_named_volume_declared_at_top_level() -> None:
    volumes = [str(volume) for volume in service("redis")["volumes"]]
    data = [volume.split(":")[0] for volume in volumes if volume.split(":")[1] == "/data"]
    assert len(data) == 1, "redis needs one volume at /data"
    assert not data[0].startswith((".", "/")), "redis /data must be a named volume, not a bind"
    assert data[0] in (compose().get("volumes") or {})


def test_redis_has_a_redis_cli_ping_healthcheck() -> None:
    test = command_words(service("redis")["healthcheck"]["test"])
    assert test[0] in ("CMD", "CMD-SHELL")
    assert "redis-cli" in " ".join(test[1:])
    assert "ping" in " ".join(test[1:])


@pytest.mark.parametrize("name", ["api", "worker"])
def test_service_waits_for_a_healthy_redis(name: str) -> None:
    depends = service(name)["depends_on"]
    assert isinstance(depends, dict), "the long form is needed for `condition`"
    assert depends["redis"]["condition"] == "service_healthy"


def test_api_publishes_port_8080_on_localhost_with_an_overridable_host_port() -> None:
    ports = [resolve_defaults(str(port)) for port in service("api")["ports"]]
    assert "127.0.0.1:8080:8080" in ports
    assert any("${API_PORT:-8080}:" in str(port) for port in service("api")["ports"])


@pytest.mark.parametrize("name", ["api", "prometheus", "grafana"])
def test_published_ports_are_on_localhost_unless_publish_host_says_otherwise(name: str) -> None:
    for port in service(name)["ports"]:
        assert str(port).startswith("${PUBLISH_HOST:-127.0.0.1}:"), port


def test_api_listens_on_all_interfaces() -> None:
    assert environment("api")["HOST"] == FIXED_SETTINGS["HOST"]


@pytest.mark.parametrize("name", ["api", "worker"])
def test_service_uses_the_compose_redis(name: str) -> None:
    assert environment(name)["REDIS_URL"] == FIXED_SETTINGS["REDIS_URL"]


def test_every_interpolated_setting_is_known_and_defaults_to_its_documented_value() -> None:
    defaults = setting_defaults()
    found = list(INTERPOLATION.finditer(COMPOSE.read_text()))
    assert found, "docker-compose.yml interpolates nothing"
    for match in found:
        name = match["name"]
        if name in COMPOSE_ONLY_VARIABLES:
            continue
        assert name in defaults, f"${{{name}}} is neither a setting nor a known compose variable"
        assert match["op"] == ":-", f"{match[0]} should read ${{{name}:-default}}"
        assert match["arg"] == defaults[name], f"{match[0]}: documented default {defaults[name]!r}"


@pytest.mark.parametrize("name", ["api", "worker"])
def test_every_setting_passes_through_with_its_documented_default(name: str) -> None:
    env = environment(name)
    for doc in SETTING_DOCS:
        if doc.name in FIXED_SETTINGS:
            continue
        assert env.get(doc.name) == f"${{{doc.name}:-{doc.default}}}", doc.name


@pytest.mark.parametrize("name", ["api", "worker"])
def test_service_command_is_a_declared_console_script(name: str) -> None:
    words = command_words(service(name).get("command"))
    assert words, f"{name} should name its command"
    assert words[0] in console_scripts()


def test_the_api_builds_this_repository_once_and_the_worker_runs_that_image() -> None:
    build = service("api").get("build")
    context = build.get("context") if isinstance(build, dict) else build
    assert context in (".", "./")
    assert "build" not in service("worker"), "a second build of the same image"
    assert service("worker")["image"] == service("api")["image"]
    assert service("worker")["pull_policy"] == "never"  # built here, not on a registry


def test_monitoring_services_only_start_with_the_monitoring_profile() -> None:
    for name in ("prometheus", "grafana"):
        assert service(name).get("profiles") == ["monitoring"]
    for name in ("redis", "api", "worker"):
        assert "profiles" not in service(name)


SENTINEL_PROFILE = ("redis-replica-1", "redis-replica-2", "sentinel-1", "sentinel-2", "sentinel-3")


def test_replicas_and_sentinels_only_start_with_the_sentinel_profile() -> None:
    for name in SENTINEL_PROFILE:
        assert service(name).get("profiles") == ["sentinel"], name


def sentinel_config(name: str) -> list[str]:
    """The lines a sentinel service writes to its config file, as its shell command has them
    (printf '%s\\n' LINE... > file), its ANNOUNCE variable filled in."""
    (script,) = service(name)["command"]
    words = shlex.split(script.split(" > ", 1)[0])
    assert words[:2] == ["printf", "%s\\n"], words[:2]
    announce = environment(name)["ANNOUNCE"]
    return [word.replace("$${ANNOUNCE}", announce) for word in words[2:]]


def documented_sentinel_url() -> str:
    match = re.search(r"WORKSTREAM_REDIS_URL=(\S+)", COMPOSE.read_text())
    assert match, "docker-compose.yml should show the sentinel profile's WORKSTREAM_REDIS_URL"
    return match[1]


def test_the_documented_sentinel_url_names_every_sentinel_and_their_master() -> None:
    url = parse_sentinel_url(documented_sentinel_url())
    sentinels = [name for name in SENTINEL_PROFILE if name.startswith("sentinel-")]
    assert [host for host, _ in url.sentinels] == sentinels
    for name in sentinels:
        config = sentinel_config(name)
        assert f"port {url.sentinels[0][1]}" in config
        assert f"sentinel monitor {url.master_name} redis 6379 2" in config
        assert f"sentinel announce-ip {name}" in config


def test_each_replica_follows_the_redis_service_and_announces_its_own_name() -> None:
    for name in ("redis-replica-1", "redis-replica-2"):
        words = command_words(service(name)["command"])
        assert words[words.index("--replicaof") + 1 :][:2] == ["redis", "6379"]
        assert words[words.index("--replica-announce-ip") + 1] == name
    redis_words = command_words(service("redis")["command"])
    assert redis_words[redis_words.index("--replica-announce-ip") + 1] == "redis"


def test_compose_bind_mounts_exist_in_the_repository() -> None:
    for name in compose()["services"]:
        for source in bind_mounts(name).values():
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def _run_entry_script(name: str, replace: dict[str, str], env: dict[str, str]) -> tuple[int, str]:
    """Runs a service's `sh -c` command here, with compose's `$$` unescaped and its paths and
    final program swapped for local stand-ins."""
    assert service(name)["entrypoint"] == ["/bin/sh", "-c"]
    script = command_words(service(name)["command"])[0].replace("$$", "$")
    for old, new in replace.items():
        assert old in script, old
        script = script.replace(old, new)
    done = subprocess.run(
        ["sh", "-c", script], env=env, capture_output=True, text=True, timeout=10, check=False
    )
    return done.returncode, done.stdout + done.stderr


def test_prometheus_scrapes_the_api_on_the_port_compose_gives_it(tmp_path: Path) -> None:
    assert environment("prometheus")["PORT"] == "${PORT:-8080}"
    rewritten = tmp_path / "prometheus.yml"
    code, out = _run_entry_script(
        "prometheus",
        {
            "/etc/prometheus/prometheus.yml": str(PROMETHEUS),
            "/prometheus/prometheus.yml": str(rewritten),
            "exec /bin/prometheus": "exec echo",
        },
        {"PORT": "9191", "PATH": "/usr/bin:/bin"},
    )
    assert code == 0, out
    assert f"--config.file={rewritten}" in out
    config = yaml.safe_load(rewritten.read_text())
    targets = [
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]
    assert targets == ["api:9191"]


def test_grafana_has_no_default_admin_password() -> None:
    assert environment("grafana")["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"


@pytest.mark.parametrize(("password", "starts"), [("", False), ("s3cret", True)])
def test_grafana_starts_only_with_an_admin_password(password: str, starts: bool) -> None:
    env = {"GF_SECURITY_ADMIN_PASSWORD": password, "PATH": "/usr/bin:/bin"}
    code, out = _run_entry_script("grafana", {"exec /run.sh": "echo started"}, env)
    assert (code == 0, "started" in out) == (starts, starts), out
    if not starts:
        assert "set GRAFANA_ADMIN_PASSWORD" in out


def test_grafana_allows_anonymous_viewers() -> None:
    env = environment("grafana")
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert any(
        resolve_defaults(str(port)).endswith(":3000") for port in service("grafana")["ports"]
    )


# ---- Dockerfile and .dockerignore --------------------------------------------------------------


def test_dockerfile_is_multi_stage_with_a_python_312_slim_runtime() -> None:
    instructions = dockerfile_instructions()
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(froms) >= 2
    # ARGs before the first FROM may name the base image.
    args: dict[str, str] = {}
    for keyword, rest in instructions:
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value.strip("\"'")
    base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), froms[-1].split()[0])
    assert base == "python:3.12-slim"
    copies = [rest for keyword, rest in final_stage() if keyword == "COPY"]
    assert any(rest.startswith("--from=") for rest in copies), "the runtime copies from a builder"


def test_dockerfile_final_user_is_numeric_and_not_root() -> None:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users, "the runtime stage must switch user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_dockerfile_healthcheck_gets_health_with_urllib() -> None:
    checks = [rest for keyword, rest in final_stage() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    check = checks[0]
    assert "CMD" in check.split()
    assert "urllib" in check
    assert "http://127.0.0.1:${PORT:-8080}/health" in check


def test_dockerfile_default_command_is_the_api_console_script() -> None:
    stage = final_stage()
    entrypoints = [rest for keyword, rest in stage if keyword == "ENTRYPOINT"]
    commands = [rest for keyword, rest in stage if keyword == "CMD"]
    assert commands
    words = exec_form(entrypoints[-1]) if entrypoints else exec_form(commands[-1])
    assert words[0] in console_scripts()
    assert exec_form(commands[-1]) == ["workstream-api"]


def test_dockerfile_builder_installs_every_console_script() -> None:
    text = DOCKERFILE.read_text()
    for script in console_scripts():
        assert re.search(rf"/bin/{re.escape(script)}\b", text), f"{script} is not checked"


def test_dockerignore_excludes_venvs_git_caches_and_local_state() -> None:
    patterns = {
        line.strip().strip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".venv", ".git", "bench/.venv-peers", "bench/results", ".data", "test-output"):
        assert needed in patterns, needed
    for needed in ("pyproject.toml", "README.md", "api", "worker", "common", "cli"):
        assert needed not in patterns, f"the build needs {needed}"


# ---- Prometheus and Grafana --------------------------------------------------------------------


def test_prometheus_scrapes_the_api_metrics_every_5s() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    api_port = resolve_defaults(str(service("api")["ports"][0])).split(":")[-1]  # default PORT
    jobs = [
        job
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        if f"api:{api_port}" in static["targets"]
    ]
    assert len(jobs) == 1, "exactly one job scrapes the api service"
    job = jobs[0]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    interval = job.get("scrape_interval", config.get("global", {}).get("scrape_interval"))
    assert interval == "5s"
    mounts = bind_mounts("prometheus")
    assert (ROOT / mounts["/etc/prometheus/prometheus.yml"]).resolve() == PROMETHEUS


def test_grafana_provisions_the_prometheus_datasource() -> None:
    sources = [
        source
        for config in yaml_files(GRAFANA / "provisioning" / "datasources")
        for source in config["datasources"]
    ]
    assert any(
        source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
        for source in sources
    )
    mounts = bind_mounts("grafana")
    assert (ROOT / mounts["/etc/grafana/provisioning"]).resolve() == GRAFANA / "provisioning"


def test_grafana_provisions_the_mounted_dashboard() -> None:
    providers = [
        provider
        for config in yaml_files(GRAFANA / "provisioning" / "dashboards")
        for provider in config["providers"]
    ]
    paths = {PurePosixPath(provider["options"]["path"]) for provider in providers}
    mounted = [
        PurePosixPath(target)
        for target, source in bind_mounts("grafana").items()
        if (ROOT / source).resolve() == DASHBOARD
    ]
    assert mounted, "docker-compose.yml does not mount the dashboard into grafana"
    assert mounted[0].parent in paths


def test_dashboard_queries_only_contract_metric_names() -> None:
    assert dashboard_queries(), "the dashboard has no queries"
    unknown = queried_metrics() - CONTRACT_METRICS
    assert not unknown, f"not in the contract: {sorted(unknown)}"


def test_dashboard_shows_every_contract_metric() -> None:
    missing = CONTRACT_METRICS - queried_metrics()
    assert not missing, f"no panel shows {sorted(missing)}"


@pytest.mark.parametrize("histogram", HISTOGRAMS)
def test_dashboard_shows_p50_p95_p99_from_histogram_buckets(histogram: str) -> None:
    queries = [re.sub(r"\s+", "", query) for query in dashboard_queries()]
    for quantile in ("0.5", "0.95", "0.99"):
        assert any(
            query.startswith(f"histogram_quantile({quantile},") and f"{histogram}_bucket" in query
            for query in queries
        ), f"no p{quantile} panel for {histogram}"


def test_dashboard_counters_are_shown_as_rates() -> None:
    for query in dashboard_queries():
        for token in METRIC_TOKEN.findall(query):
            if token.endswith(("_total", "_bucket")):
                assert re.search(rf"(rate|increase)\([^()]*{token}", query), query


def test_dashboard_panels_use_the_datasource_variable() -> None:
    variables = {variable["name"] for variable in dashboard()["templating"]["list"]}
    for panel in walk_panels(dashboard()["panels"]):
        for target in panel.get("targets", []):
            uid = target.get("datasource", panel.get("datasource", {})).get("uid", "")
            assert uid.startswith("${") and uid[2:-1] in variables, panel["title"]


def test_dashboard_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in walk_panels(dashboard()["panels"])]
    assert len(ids) == len(set(ids))


def test_only_the_workstream_package_is_installed() -> None:
    """Users get one package, `workstream`; api/, worker/, common/ and cli/ stay top-level
    folders in the repository and install under it through workstream/'s symlinks."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == ["workstream*"]
    for folder in ("api", "worker", "common", "cli"):
        link = ROOT / "workstream" / folder
        assert link.is_symlink() and link.resolve() == (ROOT / folder).resolve()
    scripts = project["project"]["scripts"].values()
    assert all(target.startswith("workstream.") for target in scripts)


# ---- Makefile ----------------------------------------------------------------------------------


def make_prerequisites(target: str) -> list[str]:
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith(f"{target}:"):
            return line.split(":", 1)[1].split()
    raise AssertionError(f"no {target} target in the Makefile")


def test_make_test_installs_chromium_through_its_own_target() -> None:
    assert "chromium" in make_prerequisites("test")
    text = (ROOT / "Makefile").read_text()
    assert "\t$(BIN)/python -m tests.browser.chromium\n" in text


def test_browser_fixtures_never_install_chromium_themselves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.browser import chromium

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("the fixture ran a command")

    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr("subprocess.run", no_subprocess)
    with pytest.raises(chromium.ChromiumUnavailable, match="make chromium"):
        chromium.ensure_chromium()
