"""MLflow mirrors the registry: a real `mlflow server` on PostgreSQL, started here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import mlflow
import mlflow.xgboost
import numpy as np
import psycopg2
import pytest
import xgboost as xgb
from mlflow import MlflowClient

from ctr_assets.db.connection import Database
from ctr_assets.models.mlflow_mirror import CHAMPION_ALIAS, VERSION_TAG
from ctr_assets_tests.mlflow_server import MlflowServer, new_mlflow_server
from ctr_assets_tests.scenarios import Scenario, make_scenario

BIN = Path(sys.executable).parent
MODEL = "ctr_model"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def mlflow_server(pg_admin_url: str, tmp_path: Path) -> Iterator[MlflowServer]:
    """`mlflow server` with its backend store in a new PostgreSQL database."""
    name = f"mlflow_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(pg_admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    head, _, query = pg_admin_url.partition("?")
    store = Database(head.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else ""))
    server = new_mlflow_server(store.sqlalchemy_url, tmp_path / "mlflow")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _cli(scenario: Scenario, mlflow_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=scenario.db.url,
        CTR_HOME=str(scenario.model_dir.parent),  # models under CTR_HOME/models
        MLFLOW_TRACKING_URI=mlflow_url,
    )
    return subprocess.run(
        [str(BIN / "ctr-assets"), *args], env=env, capture_output=True, text=True, check=False
    )


def _mlflow_versions(client: MlflowClient) -> dict[str, str]:
    """Our version -> MLflow's version number."""
    return {
        mv.tags[VERSION_TAG]: str(mv.version)
        for mv in client.search_model_versions(f"name='{MODEL}'")
    }


def _alias_target(client: MlflowClient) -> str:
    return client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS).tags[VERSION_TAG]


def test_mlflow_follows_bootstrap_promotion_and_rollback_and_catches_up_after_an_outage(
    db: Database,
    instance: dg.DagsterInstance,
    tmp_path: Path,
    mlflow_server: MlflowServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    client = MlflowClient(tracking_uri=mlflow_server.url)
    scenario = make_scenario(db, instance, tmp_path, drift_day=9)

    # Bootstrap: the first model is logged, registered and made champion in MLflow too.
    scenario.live_until(6)
    bootstrap = scenario.check()
    assert bootstrap.record["status"] == "retrained"
    first = scenario.registry.champion().version
    assert bootstrap.record["mlflow_mirror"]["status"] == "mirrored"
    assert bootstrap.record["mlflow_mirror"]["logged"] == [first]
    assert _mlflow_versions(client).keys() == {first}
    assert _alias_target(client) == first
    scenario.live_until(16)

    # Promotion: the drifted world makes the check retrain and promote a challenger.
    promoted = scenario.check()
    record = promoted.record
    assert promoted.success
    assert record["status"] == "retrained", record["reason"]
    second = record["champion_after"]
    assert record["mlflow_mirror"]["status"] == "mirrored"
    assert record["mlflow_mirror"]["logged"] == [second]
    assert _mlflow_versions(client).keys() == {first, second}
    assert _alias_target(client) == second

    # The MLflow run holds the parameters, the hold-out figures and the decision record,
    # and the registered model predicts exactly as our champion's file does.
    version = client.get_model_version(MODEL, _mlflow_versions(client)[second])
    run = client.get_run(version.run_id)
    assert run.data.tags[VERSION_TAG] == second
    assert run.data.params["max_depth"] == str(scenario.registry.get(second).params["max_depth"])
    assert run.data.metrics["holdout_mae"] == pytest.approx(record["mae_after"])
    stored = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/decision_record.json")
    assert stored["status"] == "retrained"
    assert stored["challenger"] == second
    mlflow.set_tracking_uri(mlflow_server.url)
    served = mlflow.xgboost.load_model(f"models:/{MODEL}@{CHAMPION_ALIAS}")
    ours = scenario.registry.load(scenario.registry.get(second))
    features = np.random.default_rng(0).random((5, ours.num_features()))
    np.testing.assert_array_equal(
        served.predict(xgb.DMatrix(features, feature_names=ours.feature_names)),
        ours.predict(xgb.DMatrix(features, feature_names=ours.feature_names)),
    )

    # Rollback from the command line: the alias follows it.
    rolled = _cli(scenario, mlflow_server.url, "models", "rollback", first)
    assert rolled.returncode == 0, rolled.stderr
    assert "MLflow: alias champion" in rolled.stdout
    champion = json.loads(_cli(scenario, mlflow_server.url, "models", "champion").stdout)
    assert champion["version"] == first
    assert _alias_target(client) == champion["version"]

    # With the server down the check still succeeds; its record says the mirror failed.
    mlflow_server.stop()
    outage = scenario.check()
    assert outage.success
    assert outage.record["status"] != "error"
    mirror = outage.record["mlflow_mirror"]
    assert mirror["status"] == "failed"
    assert "does not answer" in mirror["error"]
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT record->'mlflow_mirror'->>'status' FROM retrain_decisions WHERE run_id = %s",
            (outage.run_id,),
        )
        assert cur.fetchone()[0] == "failed"
    missed = [outage.record["challenger"]] if outage.record["challenger"] else []

    # The next check, with the server back, mirrors what the failed one missed; from the
    # command line, whose JSON MLflow's own output must not spoil.
    mlflow_server.start()
    after = _cli(scenario, mlflow_server.url, "check-retrain", "--in-process")
    assert after.returncode == 0, after.stderr
    mirror = json.loads(after.stdout)["mlflow_mirror"]
    assert mirror["status"] == "mirrored"
    assert mirror["logged"] == missed
    assert missed, "the outage check should have trained a challenger to catch up on"
    ours_now = {m.version for m in scenario.registry.versions()}
    assert _mlflow_versions(client).keys() == ours_now
    assert _alias_target(client) == scenario.registry.champion().version


def test_without_a_tracking_uri_the_record_has_no_mirror(
    db: Database, instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    scenario = make_scenario(db, instance, tmp_path, drift_day=None)
    scenario.live_until(6)
    run = scenario.check()
    assert run.record["status"] == "retrained"
    assert run.record["mlflow_mirror"] is None
