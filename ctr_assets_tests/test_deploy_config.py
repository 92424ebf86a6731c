"""The deployment files agree with each other and with the installed package.

docker-compose.yml, the Dockerfile, dagster.yaml, workspace.yaml and .env.example are parsed
(no Docker engine needed) and checked by functions that return human-readable problems, so
that a test can also show each check catching the mistake it is there for. The commands the
services run are checked against the installed package, and the gRPC server command is run.
"""

from __future__ import annotations

import copy
import importlib
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ctr_assets_tests.deploy_checks import (
    BIN,
    DAGSTER_EXECUTABLES,
    ENV_FILE,
    EXPECTED_DAGSTER_SERVICES,
    ROOT,
    Deployment,
    Document,
    command_of,
    dagster_env_variables,
    dagster_environment_problems,
    dagster_services,
    env_files,
    flag_value,
    healthcheck_command,
    ignored,
    image_problems,
    interpolate,
    interpolated_variables,
    problems,
    read_deployment,
    words_and_flags,
)

# ---------------------------------------------------------------------------------------
# Tests

DEPLOYMENT = read_deployment()


def dagster_commands(compose: Document) -> list[tuple[str, list[str]]]:
    """(where, command) of every Dagster command the services run, healthchecks included."""
    commands = []
    for name, service in (compose.get("services") or {}).items():
        for where, command in (
            (name, command_of(service)),
            (f"{name}-healthcheck", healthcheck_command(service)),
        ):
            if command[:1] and command[0] in DAGSTER_EXECUTABLES:
                commands.append((where, command))
    return commands


def grpc_service(deployment: Deployment) -> tuple[str, Document]:
    (server,) = [e["grpc_server"] for e in deployment.workspace["load_from"] if "grpc_server" in e]
    return server["host"], deployment.compose["services"][server["host"]]


def without_variable(
    deployment: Deployment, service: str, variable: str
) -> tuple[Document, dict[str, str]]:
    """The compose document and env mapping with `variable` taken from one service."""
    compose = copy.deepcopy(deployment.compose)
    env_example = dict(deployment.env_example)
    target = compose["services"][service]
    declared = target.get("environment") or {}
    if isinstance(declared, list):
        target["environment"] = [e for e in declared if str(e).partition("=")[0] != variable]
    else:
        target["environment"] = {k: v for k, v in declared.items() if k != variable}
    if env_files(target):
        env_example.pop(variable, None)
    return compose, env_example


def test_compose_agrees_with_dagster_yaml_workspace_and_env_example() -> None:
    d = DEPLOYMENT
    assert problems(d.compose, d.dagster_yaml, d.workspace, d.env_example) == []


def test_image_agrees_with_the_services() -> None:
    d = DEPLOYMENT
    assert image_problems(d.dockerfile, d.dockerignore, d.compose, d.env_example) == []


def test_the_three_dagster_services_are_there() -> None:
    assert set(dagster_services(DEPLOYMENT.compose)) == EXPECTED_DAGSTER_SERVICES


def test_dagster_yaml_reads_its_storage_url_from_the_environment() -> None:
    assert dagster_env_variables(DEPLOYMENT.dagster_yaml) == {"DAGSTER_POSTGRES_URL"}


@pytest.mark.parametrize("service", sorted(EXPECTED_DAGSTER_SERVICES))
def test_a_service_without_a_variable_dagster_yaml_reads_is_a_problem(service: str) -> None:
    d = DEPLOYMENT
    compose, env_example = without_variable(d, service, "DAGSTER_POSTGRES_URL")
    found = problems(compose, d.dagster_yaml, d.workspace, env_example)
    assert any(
        "DAGSTER_POSTGRES_URL" in problem and f"service {service} " in problem for problem in found
    ), found


def test_a_variable_from_env_file_counts_and_its_absence_is_a_problem() -> None:
    d = DEPLOYMENT
    compose = copy.deepcopy(d.compose)
    webserver = compose["services"]["webserver"]
    webserver["environment"] = {}
    webserver["env_file"] = [ENV_FILE]
    url = "postgresql+psycopg2://ctr:secret@postgres:5432/ctr"
    with_url = {**d.env_example, "DAGSTER_POSTGRES_URL": url}
    assert dagster_environment_problems(compose, d.dagster_yaml, with_url) == []
    stripped, env_example = without_variable(
        Deployment(compose, d.dagster_yaml, d.workspace, with_url, "", "", ""),
        "webserver",
        "DAGSTER_POSTGRES_URL",
    )
    found = dagster_environment_problems(stripped, d.dagster_yaml, env_example)
    assert any("service webserver " in p and "DAGSTER_POSTGRES_URL" in p for p in found), found


@pytest.mark.parametrize(
    "ports",
    [["3000:3000"], ["0.0.0.0:3000:3000"], [{"target": 3000, "published": 3000}]],
    ids=["no-host-ip", "all-interfaces", "long-syntax-no-host-ip"],
)
def test_a_webserver_port_not_bound_to_localhost_is_a_problem(ports: list[Any]) -> None:
    d = DEPLOYMENT
    compose = copy.deepcopy(d.compose)
    compose["services"]["webserver"]["ports"] = ports
    found = problems(compose, d.dagster_yaml, d.workspace, d.env_example)
    assert any("service webserver publishes" in p and "127.0.0.1" in p for p in found), found


def test_a_webserver_port_other_than_its_listening_port_is_a_problem() -> None:
    d = DEPLOYMENT
    compose = copy.deepcopy(d.compose)
    compose["services"]["webserver"]["ports"] = ["127.0.0.1:3000:8080"]
    found = problems(compose, d.dagster_yaml, d.workspace, d.env_example)
    assert any("container port 8080" in p for p in found), found


def test_postgres_without_a_healthcheck_is_a_problem() -> None:
    d = DEPLOYMENT
    compose = copy.deepcopy(d.compose)
    del compose["services"]["postgres"]["healthcheck"]
    found = problems(compose, d.dagster_yaml, d.workspace, d.env_example)
    assert any("service postgres (PostgreSQL) has no healthcheck" in p for p in found), found


@pytest.mark.parametrize("service", sorted(EXPECTED_DAGSTER_SERVICES))
def test_waiting_only_for_postgres_to_start_is_a_problem(service: str) -> None:
    d = DEPLOYMENT
    compose = copy.deepcopy(d.compose)
    compose["services"][service]["depends_on"] = ["postgres"]
    found = problems(compose, d.dagster_yaml, d.workspace, d.env_example)
    assert any(f"service {service} uses the database but waits" in p for p in found), found


def test_a_url_to_another_host_or_scheme_is_a_problem() -> None:
    d = DEPLOYMENT
    compose = copy.deepcopy(d.compose)
    compose["services"]["daemon"]["environment"] = {
        "DAGSTER_POSTGRES_URL": "postgresql://ctr:x@localhost:5432/ctr"
    }
    found = problems(compose, d.dagster_yaml, d.workspace, d.env_example)
    assert any("daemon: DAGSTER_POSTGRES_URL has scheme 'postgresql'" in p for p in found), found
    assert any("daemon: DAGSTER_POSTGRES_URL points at host 'localhost'" in p for p in found)


def test_a_workspace_port_the_server_does_not_serve_is_a_problem() -> None:
    d = DEPLOYMENT
    workspace = copy.deepcopy(d.workspace)
    workspace["load_from"][0]["grpc_server"]["port"] = 4001
    found = problems(d.compose, d.dagster_yaml, workspace, d.env_example)
    assert any("on port 4001" in p for p in found), found


def test_a_variable_missing_from_env_example_is_a_problem() -> None:
    d = DEPLOYMENT
    env_example = {k: v for k, v in d.env_example.items() if k != "POSTGRES_PASSWORD"}
    found = problems(d.compose, d.dagster_yaml, d.workspace, env_example)
    assert any("${POSTGRES_PASSWORD}" in p and ".env.example" in p for p in found), found


def test_interpolation_follows_compose() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("$${SET} ${SET} $SET", env) == "${SET} v v"
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d} ${UNSET:?e}", env) == "d  d "
    assert interpolated_variables({"a": ["${A:-x}", "${B:?e}", "$$C", "$D"]}) == {
        "A": True,
        "B": False,
        "D": False,
    }


def test_an_image_that_forgets_the_linked_dagster_yaml_is_a_problem() -> None:
    d = DEPLOYMENT
    dockerfile = d.dockerfile.replace(
        "COPY pyproject.toml README.md dagster.yaml ./", "COPY pyproject.toml README.md ./"
    )
    assert dockerfile != d.dockerfile
    found = image_problems(dockerfile, d.dockerignore, d.compose, d.env_example)
    assert any("ctr_assets/deploy/dagster.yaml links to dagster.yaml" in p for p in found), found


DAGSTER_COMMANDS = dagster_commands(DEPLOYMENT.compose)


@pytest.mark.parametrize(
    ("where", "command"), DAGSTER_COMMANDS, ids=[where for where, _ in DAGSTER_COMMANDS]
)
def test_each_dagster_command_exists_and_takes_its_flags(where: str, command: list[str]) -> None:
    words, flags = words_and_flags(command)
    executable = BIN / words[0]
    assert executable.exists(), f"{where}: {words[0]} is not installed in {BIN}"
    result = subprocess.run(
        [str(executable), *words[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{where}: {' '.join(words)} --help\n{result.stderr}"
    unknown = [
        f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", result.stdout)
    ]
    assert unknown == [], f"{where}: {' '.join(words)} does not take {unknown}"


def test_the_grpc_server_target_is_the_code_location() -> None:
    _, service = grpc_service(DEPLOYMENT)
    command = command_of(service)
    module = flag_value(command, "-m", "--module-name")
    attribute = flag_value(command, "-a", "--attribute")
    assert (module, attribute) == ("ctr_assets.definitions", "defs")
    target = getattr(importlib.import_module(module), attribute)
    loaded = target if isinstance(target, dg.Definitions) else target()
    assert isinstance(loaded, dg.Definitions)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _on_port(command: list[str], port: int, host: str | None = None) -> list[str]:
    replaced = list(command)
    for flags, value in ((("-p", "--port"), str(port)), (("-h", "--host"), host)):
        index = next((i for i, token in enumerate(replaced) if token in flags), None)
        if value is not None and index is not None:
            replaced[index + 1] = value
    return replaced


def test_the_grpc_server_command_serves_the_code_location(tmp_path: Path) -> None:
    """The service's own command (on a free local port) loads the location, and the
    service's healthcheck command says so."""
    from dagster._api.list_repositories import sync_list_repositories_grpc
    from dagster._core.errors import DagsterUserCodeUnreachableError
    from dagster._grpc.client import DagsterGrpcClient

    _, service = grpc_service(DEPLOYMENT)
    port = _free_port()
    command = _on_port(command_of(service), port, host="127.0.0.1")
    health = _on_port(healthcheck_command(service), port)
    log = tmp_path / "grpc.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [str(BIN / command[0]), *command[1:]],
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},
        )
    try:
        client = DagsterGrpcClient(port=port, host="127.0.0.1")
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, log.read_text()
            try:
                client.ping("ready")
                break
            except DagsterUserCodeUnreachableError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
        listed = sync_list_repositories_grpc(client)  # raises with the load error, if any
        assert listed.repository_symbols, log.read_text()
        result = subprocess.run(
            [str(BIN / health[0]), *health[1:]],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def test_env_is_ignored_and_env_example_is_committed() -> None:
    assert ignored(ENV_FILE, DEPLOYMENT.gitignore), ".gitignore must ignore .env"
    assert (ROOT / ".env.example").is_file()
    assert not ignored(".env.example", DEPLOYMENT.gitignore), ".gitignore ignores .env.example"
