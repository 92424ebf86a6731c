"""The real daemon machinery on Dagster storage in PostgreSQL (dagster-postgres).

`execute_sensor_iteration` is the daemon's own sensor loop body (a private API, pinned by
this test: a Dagster upgrade that changes it fails here first). The code location is
loaded the way the daemon loads it, from `ctr_assets.definitions:defs` over gRPC.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.sensor import execute_sensor_iteration

from ctr_assets.db.connection import Database
from ctr_assets.orchestration.jobs import MODEL
from ctr_assets_tests.scenarios import Scenario, scenario_spec, with_champion

ROOT = Path(__file__).resolve().parents[1]


def _tick(context) -> None:
    list(
        execute_sensor_iteration(
            context,
            logging.getLogger("test-daemon"),
            threadpool_executor=None,
            submit_threadpool_executor=None,
        )
    )


def _runs_by_trigger(instance: dg.DagsterInstance, trigger: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={"ctr_assets/trigger": trigger})))


def _decision(db: Database, run_id: str) -> dict:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT record FROM retrain_decisions WHERE run_id = %s", (run_id,))
        rows = cur.fetchall()
    assert len(rows) == 1, rows
    return rows[0][0]


def test_sensor_ticks_launch_runs_that_retrain_and_check(
    db: Database,
    dagster_storage_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("CTR_HOME", str(home))
    monkeypatch.setenv("CTR_RETRAIN_COOLDOWN_HOURS", "0")
    monkeypatch.setenv("CTR_PURCHASE_SENSOR_INTERVAL_SECONDS", "1")
    monkeypatch.setenv("CTR_ACCURACY_SENSOR_INTERVAL_SECONDS", "1")
    overrides = {"storage": {"postgres": {"postgres_url": dagster_storage_url}}}
    with dg.instance_for_test(
        overrides=overrides, synchronous_run_coordinator=True, synchronous_run_launcher=True
    ) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        from ctr_assets.models.registry import ModelRegistry
        from ctr_assets.simulation.world import DemoWorld

        scenario = Scenario(
            db=db,
            world=DemoWorld(scenario_spec(drift_day=9)),
            registry=ModelRegistry(db, home / "models"),
            instance=instance,
            model_dir=home / "models",
        )
        with_champion(scenario, 6, 16)
        first_champion = scenario.registry.champion().version
        # The accuracy is measured on its own (as a refresh would): a fresh breach.
        assert scenario.check(selection=["prediction_accuracy", "real_training_data"]).success

        target = ModuleTarget(
            module_name="ctr_assets.definitions",
            attribute="defs",
            working_directory=str(ROOT),
            location_name="ctr_assets",
        )
        with create_test_daemon_workspace_context(target, instance) as context:
            _tick(context)  # the accuracy sensor requests a retrain; the purchase sensor starts
            retrains = _runs_by_trigger(instance, "accuracy_sensor")
            assert len(retrains) == 1
            run = instance.get_run_by_id(retrains[0].run_id)
            assert run.status == dg.DagsterRunStatus.SUCCESS
            assert run.asset_selection == {
                MODEL,
                dg.AssetKey("champion_model"),
                dg.AssetKey("retrain_report"),
            }
            materialized = instance.fetch_materializations(MODEL, limit=1).records[0]
            assert materialized.run_id == run.run_id
            record = _decision(db, run.run_id)
            assert record["status"] == "retrained"
            assert record["trigger"] == "accuracy_sensor"
            assert record["champion_before"] == first_champion
            assert scenario.registry.champion().version == record["champion_after"]

            with psycopg2.connect(db.url) as conn, conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO purchase_signals (transaction_id, video_id, amount, currency, "
                    "occurred_at) VALUES ('tx-e2e', 'v1', 19.9, 'USD', now())"
                )
            deadline = time.monotonic() + 30
            while not _runs_by_trigger(instance, "purchase_signals"):
                assert time.monotonic() < deadline, "no check followed the purchase"
                time.sleep(1.1)
                _tick(context)
            checks = _runs_by_trigger(instance, "purchase_signals")
            assert len(checks) == 1
            check_run = instance.get_run_by_id(checks[0].run_id)
            assert check_run.status == dg.DagsterRunStatus.SUCCESS
            assert check_run.tags["ctr_assets/purchases"] == "1"
            check_record = _decision(db, check_run.run_id)
            assert check_record["trigger"] == "purchase_signals"
            # The new champion has no resolved predictions yet: judged later, not retrained.
            assert check_record["status"] == "insufficient_data"
            # No second retrain from the same accuracy.
            assert len(_runs_by_trigger(instance, "accuracy_sensor")) == 1
