"""No asset hands a pickled object to another: every asset reports with metadata, and the
training step reads the training data itself (here, in process)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from ctr_assets.db.connection import Database
from ctr_assets.orchestration.resources import SCHEDULER_ADDRESS_VARIABLE
from ctr_assets.simulation.populate import populate
from ctr_assets_tests.scenarios import make_scenario
from ctr_assets_tests.world_specs import small_world


def test_a_check_leaves_no_asset_output_in_dagster_storage(
    db: Database, instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SCHEDULER_ADDRESS_VARIABLE, raising=False)
    scenario = make_scenario(db, instance, tmp_path, None)
    populate(db, small_world())
    run = scenario.check(
        selection=[
            "prediction_accuracy",
            "real_training_data",
            "ctr_model",
            "champion_model",
            "retrain_report",
            "accuracy_report",
        ]
    )
    assert run.success, run
    assert run.record["status"] == "retrained"
    storage = Path(instance.storage_directory())
    files = [p for p in storage.rglob("*") if p.is_file()] if storage.exists() else []
    outputs = [p for p in files if "compute_logs" not in p.parts]  # logs are not outputs
    assert files  # the run did write under the storage directory: its logs
    assert outputs == []
    described = instance.fetch_materializations(dg.AssetKey("real_training_data"), limit=1)
    metadata = described.records[0].asset_materialization.metadata
    assert metadata["read_on"].value == "in process"
    assert metadata["dagster/row_count"].value + metadata["bad_rows"].value == (
        metadata["rows_read"].value
    )
    assert run.record["bad_rows"] == {
        reason: metadata[f"bad_rows/{reason}"].value for reason in run.record["bad_rows"]
    }
