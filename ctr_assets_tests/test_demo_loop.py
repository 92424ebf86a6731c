"""The closed loop on the demo world with drift: breach, one retrain, recovery."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from ctr_assets.db.connection import Database
from ctr_assets.db.demo_schema import reset_demo_schema
from ctr_assets.orchestration.demo import run_demo
from ctr_assets.simulation.world import WorldSpec
from ctr_assets_tests.world_specs import END

THRESHOLD = 0.02


def test_drift_is_caught_within_three_days_and_one_retrain_recovers(
    db: Database, tmp_path: Path
) -> None:
    spec = WorldSpec(seed=42, days=30, videos=6000, drift_day=15, end=END)
    scoped = reset_demo_schema(db, "demo_test")
    with dg.instance_for_test() as instance:
        days = run_demo(scoped, spec, tmp_path / "models", instance=instance, first_check_day=7)

    assert all(d.run_success for d in days)
    checks = [d for d in days if d.status != "history"]
    first, *rest = checks
    assert first.status == "retrained"  # no champion yet
    assert first.day == 7
    before_drift = [d for d in rest if d.mae is not None and d.day < spec.drift_day]
    assert before_drift
    assert all(d.status == "no_retrain_needed" for d in before_drift)
    assert all(d.mae_upper_bound < THRESHOLD for d in before_drift)

    retrains = [d for d in rest if d.status == "retrained"]
    assert len(retrains) == 1
    retrain = retrains[0]
    assert spec.drift_day < retrain.day <= spec.drift_day + 3  # caught within three days
    assert retrain.views == {"noise_aware": "retrain", "naive": "no_retrain_needed"}
    assert retrain.champion != first.champion
    assert not [d for d in rest if d.status in {"rejected", "error"}]

    after = [d for d in rest if d.day > retrain.day and d.mae is not None]
    assert len(after) >= 3
    assert all(d.status == "no_retrain_needed" for d in after)
    assert all(d.champion == retrain.champion for d in after)


def _noisy_demo(db: Database, tmp_path: Path, schema: str, gate: str, **world) -> list:
    spec = WorldSpec(seed=42, outcome_impressions=(20, 100), end=END, **world)
    scoped = reset_demo_schema(db, schema)
    with dg.instance_for_test() as instance:
        return run_demo(
            scoped,
            spec,
            tmp_path / schema,
            instance=instance,
            first_check_day=7,
            retrain_settings={"gate": gate},
        )


def test_on_noisy_outcomes_the_noise_aware_gate_waits_for_the_drift(
    db: Database, tmp_path: Path
) -> None:
    """Outcomes read after 20 to 100 impressions: label noise alone puts the observed MAE
    over the threshold. The noise-aware gate stays quiet until the drift (day 15) and
    then retrains."""
    days = _noisy_demo(
        db, tmp_path, "noisy_aware", "noise_aware", days=24, videos=4800, drift_day=15
    )
    before = [d for d in days if d.mae is not None and 7 < d.day < 15]
    assert before
    assert all(d.mae > THRESHOLD for d in before)  # the noise is over the line
    assert all(d.status == "no_retrain_needed" for d in before)
    assert all(d.views["naive"] == "retrain" for d in before)
    assert [d.day for d in days if d.status == "retrained" and d.day > 15]


def test_on_noisy_outcomes_the_naive_gate_trains_on_noise(db: Database, tmp_path: Path) -> None:
    days = _noisy_demo(db, tmp_path, "noisy_naive", "naive", days=12, videos=2400, drift_day=None)
    judged = [d for d in days if d.mae is not None and d.day > 7]
    assert judged
    assert all(d.status in {"retrained", "rejected"} for d in judged)  # a challenger each day
    assert all(d.views["noise_aware"] == "no_retrain_needed" for d in judged)


def test_demo_command_prints_a_line_per_day_and_exits_zero(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DAGSTER_HOME"}}
    env["CTR_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctr_assets.cli",
            "demo",
            "--days",
            "12",
            "--videos",
            "1800",
            "--drift-day",
            "-1",
            "--first-check-day",
            "5",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    day_lines = [line for line in done.stdout.splitlines() if line.startswith("day ")]
    assert len(day_lines) == 12
    assert "retrained" in day_lines[5]
    assert any("no_retrain_needed" in line for line in day_lines[6:])
    assert "failed: 0" in done.stdout
