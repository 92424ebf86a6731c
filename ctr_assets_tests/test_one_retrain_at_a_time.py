"""Three checks launched at once retrain one after another (Dagster's pool on the step)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ctr_assets.db.connection import Database
from ctr_assets_tests.scenarios import make_scenario, with_champion

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dagster_home(dagster_storage_url: str, tmp_path: Path) -> Path:
    """The product's own dagster.yaml (pools limited to 1), storage in a new database."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    return home


def _step_window(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float]:
    times = {
        event.dagster_event.event_type_value: event.timestamp
        for event in instance.all_logs(run_id)
        if event.dagster_event and event.dagster_event.step_key == "retrain_check"
    }
    end = times.get("STEP_SUCCESS", times.get("STEP_FAILURE"))
    assert "STEP_START" in times, times
    assert end is not None, times
    return times["STEP_START"], end


def test_schedule_sensor_and_manual_retrains_never_overlap(
    db: Database,
    dagster_home: Path,
    dagster_storage_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", dagster_storage_url)
    with dg.DagsterInstance.get() as instance:
        scenario = with_champion(make_scenario(db, instance, tmp_path, 9), 6, 16)
        as_of = scenario.world.spec.day_start(17).isoformat()
        launches = [
            ["schedule"],
            ["accuracy_sensor", "ctr_model,champion_model,retrain_report"],
            ["manual"],
        ]
        env = {
            **os.environ,
            "DAGSTER_HOME": str(dagster_home),
            "DAGSTER_POSTGRES_URL": dagster_storage_url,
        }
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ctr_assets_tests.run_one_check",
                    trigger,
                    db.url,
                    str(scenario.model_dir),
                    as_of,
                    *selection,
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for trigger, *selection in launches
        ]
        outputs = [process.communicate(timeout=600) for process in processes]
        for process, (_out, err) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, err[-3000:]
        run_ids = [out.split()[0] for out, _ in outputs]

        runs = [instance.get_run_record_by_id(run_id) for run_id in run_ids]
        assert {r.dagster_run.tags["ctr_assets/trigger"] for r in runs} == {
            "schedule",
            "accuracy_sensor",
            "manual",
        }
        # The runs themselves were under way at the same time...
        starts = sorted(r.start_time for r in runs)
        ends = sorted(r.end_time for r in runs)
        assert starts[-1] < ends[0], "the three runs did not overlap at all; nothing was tested"
        # ...but their retrain steps ran strictly one after another.
        windows = sorted(_step_window(instance, run_id) for run_id in run_ids)
        for (_, earlier_end), (later_start, _) in itertools.pairwise(windows):
            assert earlier_end <= later_start, windows
        statuses = [out.split()[1] for out, _ in outputs]
        assert statuses.count("retrained") >= 1
