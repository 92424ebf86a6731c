"""`ctr-assets tune` on a small world and a real PostgreSQL: the Optuna study is stored in
the database, a better config becomes the training config of the next check, a worse one
changes nothing, and a rollback restores the one before."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from ctr_assets.cli import main
from ctr_assets.db.connection import Database
from ctr_assets.ml.training import TrainingParams
from ctr_assets.models.training_configs import (
    adopt_training_config,
    current_training_config,
    training_config_history,
    training_params_for_check,
)
from ctr_assets.orchestration.run_check import run_check_in_process
from ctr_assets.retraining.tune import tune_training_config
from ctr_assets.simulation.populate import populate
from ctr_assets_tests.world_specs import END, small_world

# Five rounds at a learning rate of 0.01 barely move off the mean CTR: any sensible trial
# beats it far beyond noise.
UNDERFIT = replace(TrainingParams(), num_boost_round=5, learning_rate=0.01)


@pytest.fixture
def world(db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Database:
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("CTR_HOME", str(tmp_path / "home"))
    populate(db, small_world(videos=3000))
    return db


def _tune(*args: str) -> dict:
    result = CliRunner().invoke(main, ["tune", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _stored_trials(db: Database, study: str) -> list[tuple[int, str, float]]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT t.number, t.state, v.value FROM optuna.trials t "
            "JOIN optuna.studies s USING (study_id) "
            "LEFT JOIN optuna.trial_values v USING (trial_id) "
            "WHERE s.study_name = %s ORDER BY t.number",
            (study,),
        )
        return cur.fetchall()


def test_a_better_config_becomes_the_training_config_of_the_next_check(
    world: Database, tmp_path: Path
) -> None:
    underfit = adopt_training_config(world, UNDERFIT, replacing=None, reason="test: underfit")

    report = _tune("--trials", "3", "--study", "better", "--seed", "1")

    trials = _stored_trials(world, "better")
    assert [(number, state) for number, state, _ in trials] == [
        (0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE"),
    ]  # fmt: skip
    assert min(value for _, _, value in trials) == pytest.approx(report["best_holdout_mae"])
    assert report["adopted"] is True, report["reason"]
    assert report["best_holdout_mae"] < report["current_holdout_mae"]
    assert report["config_before"] == underfit.id
    in_force = current_training_config(world)
    assert in_force is not None
    assert in_force.id == report["config_after"] != underfit.id
    assert in_force.study_name == "better"
    assert in_force.holdout_mae == report["best_holdout_mae"]
    tuned = TrainingParams.from_dict(report["best_params"])
    assert in_force.params == tuned != UNDERFIT
    assert training_params_for_check(world, TrainingParams()) == tuned
    assert [change.action for change in training_config_history(world)] == ["adopted"] * 2

    # The next check trains with it: the first model's stored params are the tuned ones.
    with dg.instance_for_test() as instance:
        run = run_check_in_process(instance, world, model_dir=str(tmp_path / "models"), as_of=END)
    assert run.success
    assert run.record["status"] == "retrained"
    with world.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT params FROM model_versions")
        (params,) = cur.fetchone()
    assert params["learning_rate"] == tuned.learning_rate
    assert params["max_depth"] == tuned.max_depth
    assert params["num_boost_round"] == tuned.num_boost_round


def test_a_worse_config_leaves_the_training_config_alone(world: Database) -> None:
    def worse(trial, base: TrainingParams) -> TrainingParams:
        rate = trial.suggest_float("learning_rate", 0.001, 0.002)
        return replace(base, learning_rate=rate, num_boost_round=3)

    report = tune_training_config(world, trials=3, study_name="worse", suggest=worse, now=END)

    assert len(_stored_trials(world, "worse")) == 3
    assert report.adopted is None
    assert report.outcome.best_mae > report.outcome.current_mae
    assert "the config in force stays" in report.reason
    assert current_training_config(world) is None
    assert training_config_history(world) == []
    assert training_params_for_check(world, TrainingParams()) == TrainingParams()


def test_a_study_resumes_and_a_rollback_restores_the_config_before(world: Database) -> None:
    underfit = adopt_training_config(world, UNDERFIT, replacing=None, reason="test: underfit")
    first = _tune("--trials", "2", "--study", "resumed")
    second = _tune("--trials", "1", "--study", "resumed")
    assert (first["trials_total"], second["trials_total"]) == (2, 3)
    assert len(_stored_trials(world, "resumed")) == 3
    assert first["adopted"] is True

    result = CliRunner().invoke(main, ["tune", "--roll-back-to", str(underfit.id)])
    assert result.exit_code == 0, result.output
    assert current_training_config(world).id == underfit.id
    assert training_params_for_check(world, TrainingParams()) == UNDERFIT
    history = _tune("--history")
    assert history["in_force"] == underfit.id
    assert history["changes"][-1]["action"] == "rolled_back"

    result = CliRunner().invoke(main, ["tune", "--roll-back-to", "defaults"])
    assert result.exit_code == 0, result.output
    assert training_params_for_check(world, TrainingParams()) == TrainingParams()


def test_an_operators_explicit_setting_wins_over_the_config_in_force(db: Database) -> None:
    adopt_training_config(db, UNDERFIT, replacing=None, reason="test")
    explicit = replace(TrainingParams(), max_depth=7)
    assert training_params_for_check(db, explicit) == replace(UNDERFIT, max_depth=7)


def test_the_tuning_job_runs_on_demand_and_nothing_schedules_it(world: Database) -> None:
    from ctr_assets.definitions import defs
    from ctr_assets.orchestration.resources import CtrDatabase, RetrainSettings
    from ctr_assets.orchestration.tuning import TUNE_JOB, tune_training_config_job

    adopt_training_config(world, UNDERFIT, replacing=None, reason="test: underfit")
    result = tune_training_config_job.execute_in_process(
        run_config={"ops": {"tune_training_config_op": {"config": {"trials": 2, "study": "job"}}}},
        resources={"database": CtrDatabase(url=world.url), "retrain_settings": RetrainSettings()},
    )
    assert result.success
    assert len(_stored_trials(world, "job")) == 2
    in_force = current_training_config(world)
    assert in_force is not None
    assert in_force.study_name == "job"
    repository = defs().get_repository_def()
    assert TUNE_JOB in {job.name for job in repository.get_all_jobs()}
    targeted = {schedule.job_name for schedule in repository.schedule_defs}
    for sensor in repository.sensor_defs:
        targeted |= {job.name for job in sensor.jobs} if sensor.has_jobs else set()
    assert TUNE_JOB not in targeted
