"""Every check that started leaves a decision record, one that failed before deciding too.

The `videos` table is gone (dropped by the service that owns it), so a real check run of
`retrain_check_job` fails loading the training data, before the decision: it stores
nothing itself. The sensor `ctr_record_failed_check`, given Dagster's failure event of that
run, stores its `error` record with the run id and the step's error; evaluated again it
adds nothing. A failed run that was not a check (the accuracy refresh) gets no record.
(The killed run worker, whose run fails from outside, is `test_killed_worker.py`.)
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from ctr_assets.db.connection import Database
from ctr_assets.orchestration.build import build_definitions
from ctr_assets.orchestration.failed_checks import record_failed_check_run
from ctr_assets.orchestration.jobs import ACCURACY, RETRAIN_CHECK_JOB, TRAINING_DATA
from ctr_assets.orchestration.resources import CtrDatabase, ModelStore, RetrainSettings
from ctr_assets.retraining.record import decision_for_run


def _failed_run(
    instance: dg.DagsterInstance, selection: list[dg.AssetKey] | None, trigger: str
) -> dg.ExecuteInProcessResult:
    job = build_definitions().resolve_job_def(RETRAIN_CHECK_JOB)
    result = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        asset_selection=selection,
        tags={"ctr_assets/trigger": trigger},
    )
    assert not result.success
    return result


def _evaluate(
    result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance, db: Database, home: Path
) -> str:
    context = dg.build_run_status_sensor_context(
        sensor_name=record_failed_check_run.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={
            "database": CtrDatabase(url=db.url),
            "models": ModelStore(directory=str(home / "models")),
            "retrain_settings": RetrainSettings(),
        },
    )
    outcome = record_failed_check_run(context)
    assert isinstance(outcome, dg.SkipReason)
    return outcome.skip_message or ""


def test_a_check_that_failed_before_deciding_gets_its_error_record_once(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("CTR_HOME", str(tmp_path))
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE videos")
    with dg.instance_for_test() as instance:
        check = _failed_run(instance, None, "schedule")
        refresh = _failed_run(instance, [ACCURACY, TRAINING_DATA], "accuracy_sensor")
        assert decision_for_run(db, check.run_id) is None  # the run itself stored nothing

        first = _evaluate(check, instance, db, tmp_path)
        again = _evaluate(check, instance, db, tmp_path)
        not_a_check = _evaluate(refresh, instance, db, tmp_path)

    record = decision_for_run(db, check.run_id)
    assert record is not None, first
    assert record["status"] == "error"
    assert record["trigger"] == "schedule"
    assert record["run_id"] == check.run_id
    reason = record["reason"]
    assert reason.startswith(f"the check run {check.run_id} failed before it recorded a decision")
    assert "step real_training_data failed: " in reason
    assert 'relation "videos" does not exist' in reason
    assert reason.endswith("the champion is unchanged (none yet)")
    assert record["champion_before"] is None
    assert record["champion_after"] is None
    assert f"recorded status error: {reason}" in first
    assert "recorded its own decision" in again
    assert "was not a check" in not_a_check
    assert decision_for_run(db, refresh.run_id) is None
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM retrain_decisions")
        assert cur.fetchone()[0] == 1
