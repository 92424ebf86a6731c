"""`ctr-assets check-retrain`: in this process, and through a running Dagster webserver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import requests

from ctr_assets.db.connection import Database
from ctr_assets.orchestration.remote import CHECK_ASSETS
from ctr_assets.simulation.populate import populate
from ctr_assets_tests.dev_stack import free_port
from ctr_assets_tests.world_specs import small_world

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FIXED_KEYS = {
    "status",
    "reason",
    "trigger",
    "checked_at",
    "mae",
    "n_samples",
    "threshold",
    "champion_before",
    "champion_after",
    "mae_before",
    "mae_after",
    "r2_before",
    "r2_after",
    "training_seconds",
}


def _env(db: Database, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DAGSTER_HOME"}}
    env.update(DATABASE_URL=db.url, CTR_HOME=str(home), **extra)
    return env


def _check_retrain(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ctr-assets"), "check-retrain", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_in_process_prints_the_decision_record(db: Database, tmp_path: Path) -> None:
    populate(db, small_world())
    env = _env(db, tmp_path / "home", DAGSTER_WEBSERVER_URL="http://127.0.0.1:9")
    first = _check_retrain(env)
    assert first.returncode == 0, first.stderr[-3000:]
    record = json.loads(first.stdout)
    assert set(record) >= FIXED_KEYS
    assert record["status"] == "retrained"
    assert record["trigger"] == "manual"
    assert record["champion_before"] is None
    assert record["champion_after"] is not None

    # The new champion has made no predictions yet, so there is nothing to judge it on.
    second = _check_retrain(env, "--in-process")
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    again = json.loads(second.stdout)
    assert again["status"] == "insufficient_data", again["reason"]
    assert again["n_samples"] == 0
    assert again["champion_before"] == again["champion_after"] == record["champion_after"]
    assert again["run_id"] != record["run_id"]


@pytest.fixture
def webserver(dagster_storage_url: str, db: Database, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """dagster-webserver serving the code location, its storage on PostgreSQL. Runs are
    launched directly (no daemon), so this is the webserver path alone."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {dagster_storage_url}\n"
        "run_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: ctr_assets.definitions\n"
        "      attribute: defs\n      location_name: ctr_assets\n"
    )
    port = free_port()
    env = _env(db, tmp_path / "home", DAGSTER_HOME=str(dagster_home))
    log = (tmp_path / "webserver.log").open("w")
    process = subprocess.Popen(
        [
            str(BIN / "dagster-webserver"),
            "-w",
            str(workspace),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{url}/server_info", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the webserver did not come up"
            time.sleep(0.5)
        yield url, dagster_home
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def test_through_the_webserver_the_run_shows_in_dagster(
    db: Database, tmp_path: Path, webserver: tuple[str, Path]
) -> None:
    url, dagster_home = webserver
    populate(db, small_world())
    done = _check_retrain(_env(db, tmp_path / "home"), "--webserver", url)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"launching on the Dagster webserver at {url}" in done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "retrained"
    assert record["trigger"] == "manual"
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_run_by_id(record["run_id"])
        assert run is not None
        assert run.job_name == "retrain_check_job"
        assert run.status == dg.DagsterRunStatus.SUCCESS
        # The check, as in-process: the accuracy report follows the scheduled checks.
        assert {key.to_user_string() for key in run.asset_selection} == set(CHECK_ASSETS)
        materialized = {
            event.dagster_event.asset_key.to_user_string()
            for event in instance.all_logs(
                record["run_id"], of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            )
        }
        assert materialized >= {"prediction_accuracy", "ctr_model", "retrain_report"}
        assert "accuracy_report" not in materialized
        checks = {
            event.dagster_event.event_specific_data.check_name
            for event in instance.all_logs(
                record["run_id"], of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
        }
        assert checks == {"mae_within_threshold", "challenger_beats_champion"}


def test_the_launcher_names_what_the_code_location_defines() -> None:
    """remote.py repeats these names so as not to import the code location."""
    from ctr_assets.orchestration import assets, jobs, remote, run_check

    assert remote.TRIGGER_TAG == assets.TRIGGER_TAG
    assert remote.RETRAIN_CHECK_JOB == jobs.RETRAIN_CHECK_JOB
    assert remote.CHECK_ASSETS == run_check.CHECK_ASSETS


def test_the_command_does_not_import_dagster_to_launch_on_a_webserver() -> None:
    """What makes an on-demand check through the webserver start fast."""
    probe = (
        "import sys, ctr_assets.cli, ctr_assets.orchestration.remote; "
        "print(sorted(m for m in ('dagster', 'xgboost', 'adbc_driver_postgresql', "
        "'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
