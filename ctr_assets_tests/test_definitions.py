"""The code location loads, validates, and names what the design contract fixes."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import dagster as dg


def test_definitions_validate_passes(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    done = subprocess.run(
        [
            Path(sys.executable).parent / "dagster",
            "definitions",
            "validate",
            "-m",
            "ctr_assets.definitions",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "Validation successful for code location ctr_assets.definitions" in output


def test_loading_the_definitions_raises_no_warnings_from_our_code() -> None:
    code = (
        "import warnings; warnings.simplefilter('error');"
        "import ctr_assets.definitions as d; d.defs().get_repository_def().get_all_jobs()"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_fixed_names_and_lineage() -> None:
    from ctr_assets.orchestration.build import build_definitions

    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        "prediction_accuracy",
        "real_training_data",
        "ctr_model",
        "champion_model",
        "retrain_report",
        "accuracy_report",
    }
    for key in keys:
        assert graph.get(dg.AssetKey(key)).group_name == "ctr_retraining"

    def parents(name: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("ctr_model") == {"prediction_accuracy", "real_training_data"}
    assert parents("champion_model") == {"ctr_model"}  # where a model becomes champion
    assert {"prediction_accuracy", "ctr_model", "champion_model"} <= parents("retrain_report")
    assert parents("accuracy_report") == {"retrain_report"}
    # The daily schedule's job refreshes the report after each check.
    schedule = defs.resolve_schedule_def("daily_retrain_check")
    assert schedule.job_name == "retrain_check_job"
    job_assets = defs.resolve_job_def("retrain_check_job").asset_layer.selected_asset_keys
    assert dg.AssetKey("accuracy_report") in job_assets
    checks = {key.name for key in graph.asset_check_keys}
    assert {"mae_within_threshold", "challenger_beats_champion"} <= checks
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert defs.resolve_asset_graph() is not None
