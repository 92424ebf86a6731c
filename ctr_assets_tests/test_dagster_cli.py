"""Dagster's own commands in the repository root: `dagster dev`, `dg check defs`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import requests

from ctr_assets.db.embedded import start_embedded_postgres
from ctr_assets_tests.dev_stack import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ASSETS = {"prediction_accuracy", "real_training_data", "ctr_model", "retrain_report"}
QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    name
    location { name }
    assetNodes { assetKey { path } }
    sensors { name sensorState { status } }
    schedules { name scheduleState { status } }
} } } }
"""


def _environment(home: Path, **extra: str) -> dict[str, str]:
    """A user's shell: no database configured, the project home in `home`."""
    unset = {"DATABASE_URL", "DAGSTER_POSTGRES_URL", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(CTR_HOME=str(home), VIRTUAL_ENV=sys.prefix, **extra)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _repository(url: str, process: subprocess.Popen, log: Path, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dagster dev exited:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(requests.RequestException, KeyError, TypeError, ValueError):
            answer = requests.post(f"{url}/graphql", json={"query": QUERY}, timeout=10).json()
            nodes = answer["data"]["repositoriesOrError"]["nodes"]
            if nodes and nodes[0]["assetNodes"]:
                return nodes[0]
        time.sleep(1)
    raise AssertionError(f"dagster dev never served the code location:\n{log.read_text()[-4000:]}")


def test_dagster_dev_in_the_repository_root_serves_the_product(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    log = tmp_path / "dagster-dev.log"
    process = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=_environment(home),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own group: the teardown reaches every process
    )
    try:
        repository = _repository(f"http://127.0.0.1:{port}", process, log)
        assert repository["location"]["name"] == "ctr_assets"
        assets = {node["assetKey"]["path"][-1] for node in repository["assetNodes"]}
        assert assets >= ASSETS
        sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
        assert sensors["ctr_accuracy_sensor"] == sensors["purchase_signals_sensor"] == "RUNNING"
        schedules = {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]}
        assert schedules == {"daily_retrain_check": "RUNNING"}
        # Dagster's storage is PostgreSQL, as with `ctr-assets dev`: the `dagster` database
        # of the embedded server under CTR_HOME, with Dagster's tables in it.
        application = start_embedded_postgres(home)
        head, _, query = application.partition("?")
        dagster_db = head.rsplit("/", 1)[0] + "/dagster" + (f"?{query}" if query else "")
        with psycopg2.connect(dagster_db) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT to_regclass('runs') IS NOT NULL, to_regclass('event_logs') IS NOT NULL"
            )
            assert cur.fetchone() == (True, True)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _dg(home: Path, storage_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`dg ARGUMENTS` in the repository root, with Dagster's storage at `storage_url`."""
    return subprocess.run(
        [str(BIN / "dg"), *arguments],
        cwd=ROOT,
        env=_environment(home, DAGSTER_POSTGRES_URL=storage_url),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_dg_check_defs_passes(tmp_path: Path, dagster_storage_url: str) -> None:
    result = _dg(tmp_path, dagster_storage_url, "check", "defs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully." in result.stdout


def test_dg_list_defs_shows_the_assets(tmp_path: Path, dagster_storage_url: str) -> None:
    result = _dg(tmp_path, dagster_storage_url, "list", "defs", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    for asset in ASSETS:
        assert f'"{asset}"' in result.stdout
