"""`ctr-assets backtest` replays both gates over stored predictions and trains nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ctr_assets.db.connection import Database
from ctr_assets.simulation.populate import populate
from ctr_assets.simulation.world import WorldSpec
from ctr_assets_tests.world_specs import END

BIN = Path(sys.executable).parent
NOISY = WorldSpec(
    seed=42, days=30, videos=3000, drift_day=15, outcome_impressions=(20, 100), end=END
)


def _backtest(db: Database, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(DATABASE_URL=db.url, CTR_HOME=str(home))
    return subprocess.run(
        [str(BIN / "ctr-assets"), "backtest", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _count(db: Database, table: str) -> int:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")  # the tests' own table names
        return cur.fetchone()[0]


def test_the_naive_gate_fires_on_noise_the_noise_aware_one_after_the_drift(
    db: Database, tmp_path: Path
) -> None:
    populate(db, NOISY)
    done = _backtest(db, tmp_path, "--days", "24", "--end", f"{END:%Y-%m-%d}", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    days = result["days"]
    assert len(days) == 24
    assert days[-1]["day"] == (END - timedelta(days=1)).date().isoformat()
    assert {d["model_version"] for d in days} == {"legacy-cron"}
    drift_start = NOISY.day_start(NOISY.drift_day).date().isoformat()

    naive = result["gates"]["naive"]
    aware = result["gates"]["noise_aware"]
    assert naive["first_retrain"] < drift_start  # label noise alone sets it off
    assert aware["first_retrain"] > drift_start  # quiet until the drift, then fires
    before = [d for d in days if d["day"] < drift_start]
    assert all(d["verdicts"]["noise_aware"] == "no_retrain_needed" for d in before)
    assert all(d["mae"] > 0.02 for d in before)  # the observed MAE is over the line
    # Nothing was trained: a backtest only reads.
    assert _count(db, "model_versions") == 0
    assert _count(db, "retrain_decisions") == 0


def test_the_table_says_when_each_gate_would_have_retrained_and_why(
    db: Database, tmp_path: Path
) -> None:
    populate(db, NOISY)
    done = _backtest(
        db, tmp_path, "--days", "24", "--end", f"{END:%Y-%m-%d}", "--gate", "noise_aware"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].split()[-1] == "noise_aware"  # one verdict column: the gate asked for
    summary = next(line for line in lines if line.startswith("noise_aware: would have"))
    assert "first on" in summary
    why = next(line for line in lines if line.strip().startswith("why, on"))
    assert "true MAE" in why


def test_a_schema_that_does_not_exist_is_a_usage_error(db: Database, tmp_path: Path) -> None:
    done = _backtest(db, tmp_path, "--schema", "no_such_schema")
    assert done.returncode == 2
    assert "no_such_schema" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_empty_database_backtests_to_no_predictions(db: Database, tmp_path: Path) -> None:
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    done = _backtest(db, tmp_path, "--days", "2", "--end", today, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert [d["verdicts"] for d in result["days"]] == [
        {"noise_aware": "no_predictions", "naive": "no_predictions"}
    ] * 2
    assert result["gates"]["naive"]["first_retrain"] is None
