"""One test per outcome of a check, through `dagster.materialize` on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from ctr_assets.db.connection import Database
from ctr_assets.ml.gate import GateEvidence, Outcomes, assess
from ctr_assets.ml.model_files import load_model
from ctr_assets.orchestration.assets import described_evidence
from ctr_assets.retraining.check import CheckSettings
from ctr_assets.retraining.measure import gate_settings
from ctr_assets.simulation.populate import populate
from ctr_assets_tests.scenarios import Scenario, make_scenario, with_champion
from ctr_assets_tests.world_specs import small_world


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def steady(db: Database, instance: dg.DagsterInstance, tmp_path: Path) -> Scenario:
    """No drift: the champion trained after a week keeps predicting well."""
    return with_champion(make_scenario(db, instance, tmp_path, None), 6, 16)


@pytest.fixture
def drifted(db: Database, instance: dg.DagsterInstance, tmp_path: Path) -> Scenario:
    """The champion learned the world before day 9; from day 9 TikTok's CTR doubled."""
    return with_champion(make_scenario(db, instance, tmp_path, 9), 6, 16)


def _stored_statuses(scenario: Scenario) -> list[str]:
    with scenario.db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM retrain_decisions ORDER BY id")
        return [row[0] for row in cur.fetchall()]


def test_no_champion_yet_trains_the_first_model(
    db: Database, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    scenario = make_scenario(db, instance, tmp_path, None)
    populate(db, small_world())
    run = scenario.check()
    assert run.success
    record = run.record
    assert record["status"] == "retrained"
    assert record["reason"].startswith("no champion yet")
    assert record["champion_before"] is None
    assert record["champion_after"] == record["challenger"] == scenario.registry.champion().version
    assert record["mae_before"] is None
    assert 0 < record["mae_after"] < 0.02
    assert record["trigger"] == "manual"
    assert _stored_statuses(scenario) == ["retrained"]


def test_mae_under_threshold_needs_no_retrain(steady: Scenario) -> None:
    champion = steady.registry.champion().version
    run = steady.check()
    record = run.record
    assert run.success
    assert record["status"] == "no_retrain_needed"
    assert record["n_samples"] >= 50
    assert record["mae"] < record["threshold"]
    assert record["champion_before"] == record["champion_after"] == champion
    assert steady.registry.champion().version == champion
    assert len(steady.registry.versions()) == 1


def test_breach_with_enough_rows_retrains_and_promotes_a_better_model(drifted: Scenario) -> None:
    old = drifted.registry.champion()
    run = drifted.check()
    record = run.record
    assert run.success
    assert record["status"] == "retrained"
    assert record["views"]["noise_aware"] == "retrain"
    assert record["gate"] == "noise_aware"
    assert record["n_samples"] >= 50
    assert record["champion_before"] == old.version
    new = drifted.registry.champion()
    assert new.version == record["champion_after"] == record["challenger"] != old.version
    assert record["mae_after"] < record["mae_before"]
    assert record["mae_improvement"] == pytest.approx(record["mae_before"] - record["mae_after"])
    assert record["r2_after"] > record["r2_before"]
    assert record["training_seconds"] > 0
    history = drifted.registry.history()
    assert [(c.version, c.previous_version) for c in history][-1] == (new.version, old.version)
    # The promotion followed a paired advantage beyond noise, with no platform worse.
    improvement = record["improvement"]
    assert improvement["lower"] > improvement["needed"] > 0
    assert improvement["mae"] == pytest.approx(record["mae_improvement"], rel=1e-9)
    assert {s["name"] for s in record["slices"]} >= {"tiktok", "instagram"}
    assert not any(s["regressed"] for s in record["slices"])
    assert run.checks["challenger_beats_champion"] is True
    assert run.checks["mae_within_threshold"] is False


def test_promotion_does_not_retrain_again_on_the_old_models_errors(drifted: Scenario) -> None:
    first = drifted.check()
    assert first.record["status"] == "retrained"
    old_version = first.record["champion_before"]
    bad_old_predictions = drifted.count(
        "SELECT count(*) FROM prediction_records WHERE actual_ctr IS NOT NULL "
        f"AND model_version = '{old_version}'"
    )
    assert bad_old_predictions >= 50  # still in the window
    again = drifted.check()
    assert again.record["status"] == "insufficient_data"
    assert again.record["n_samples"] == 0
    assert drifted.registry.champion().version == first.record["champion_after"]
    assert _stored_statuses(drifted).count("retrained") == 2  # first model + this one


def test_breach_with_too_few_training_rows_is_insufficient_data(drifted: Scenario) -> None:
    champion = drifted.registry.champion().version
    with drifted.db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM videos WHERE video_id NOT IN "
            "(SELECT video_id FROM videos WHERE impressions >= 100 ORDER BY video_id LIMIT 40)"
        )
    run = drifted.check()
    record = run.record
    assert run.success
    assert record["status"] == "insufficient_data"
    assert "usable training rows" in record["reason"]
    assert record["views"]["noise_aware"] == "retrain"
    assert drifted.registry.champion().version == champion
    assert len(drifted.registry.versions()) == 1


def test_a_worse_challenger_is_rejected(drifted: Scenario) -> None:
    champion = drifted.registry.champion().version
    # One shallow tree at a crawl: barely better than a constant.
    run = drifted.check(
        training_config={"num_boost_round": 1, "learning_rate": 0.01, "max_depth": 1}
    )
    record = run.record
    assert run.success
    assert record["status"] == "rejected"
    assert record["mae_after"] >= record["mae_before"]
    assert "within noise" in record["reason"]
    assert record["improvement"]["lower"] <= record["improvement"]["needed"]
    assert run.checks["challenger_beats_champion"] is False
    assert record["champion_after"] == record["champion_before"] == champion
    assert drifted.registry.champion().version == champion
    # The challenger is kept for inspection, not served.
    assert record["challenger"] in {m.version for m in drifted.registry.versions()}


def test_failed_training_is_recorded_as_error_and_fails_the_run(drifted: Scenario) -> None:
    champion = drifted.registry.champion().version
    run = drifted.check(training_config={"extra_params": {"max_depth": -3}})
    assert not run.success
    record = run.record
    assert record["status"] == "error"
    assert "max_depth" in record["reason"]
    assert record["champion_after"] == record["champion_before"] == champion
    assert drifted.registry.champion().version == champion
    failure = drifted.instance.get_run_by_id(run.run_id)
    assert failure.status == dg.DagsterRunStatus.FAILURE
    step_failures = [
        event.dagster_event.step_failure_data.error.message
        for event in drifted.instance.all_logs(run.run_id)
        if event.dagster_event and event.dagster_event.is_step_failure
    ]
    assert any("the champion is unchanged" in m and "max_depth" in m for m in step_failures)


def test_same_data_and_seed_give_byte_identical_model_files(
    pg_admin_url: str, db: Database, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    populate(db, small_world())
    files = []
    for attempt in range(2):
        scenario = make_scenario(db, instance, tmp_path / str(attempt), None)
        with db.connect() as conn, conn.cursor() as cur:
            cur.execute("TRUNCATE champion_history, model_versions CASCADE")
        run = scenario.check(as_of=small_world().end)
        model = scenario.registry.champion()
        assert run.record["champion_after"] == model.version
        files.append((Path(model.file_path).read_bytes(), model.sha256))
        load_model(Path(model.file_path), model.sha256)
    assert files[0][0] == files[1][0]
    assert files[0][1] == files[1][1]


def test_a_check_after_a_rollback_judges_the_champion_it_finds(drifted: Scenario) -> None:
    promoted = drifted.check()
    old, new = promoted.record["champion_before"], promoted.record["champion_after"]
    measured = drifted.check(selection=["prediction_accuracy", "real_training_data"])
    assert measured.success  # the accuracy of the new champion: nothing resolved yet
    drifted.registry.roll_back(old, "the new model misbehaves in production")

    # The check reads the accuracy materialized for `new`, but `old` serves now.
    run = drifted.check(selection=["ctr_model", "champion_model", "retrain_report"])
    record = run.record
    assert run.success
    assert f"re-measured: the accuracy was of {new}, the champion is now {old}" in record["reason"]
    assert record["champion_before"] == old
    assert record["n_samples"] >= 50  # the old champion's own outcomes, not the new one's
    assert record["views"]["noise_aware"] == "retrain"  # and they are still drifted


def test_a_check_takes_the_gate_evidence_once(
    drifted: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`prediction_accuracy` takes the gate's evidence; the retrain step, measuring the same
    rows as of the same moment with the same settings, uses it instead of taking it again."""
    taken = []

    def counted(*args, **kwargs):
        taken.append(1)
        return assess(*args, **kwargs)

    monkeypatch.setattr("ctr_assets.retraining.measure.assess", counted)
    run = drifted.check()
    assert run.record["status"] == "retrained"
    assert len(taken) == 1
    (latest,) = drifted.instance.fetch_materializations(
        dg.AssetKey("prediction_accuracy"), limit=1
    ).records
    described = latest.asset_materialization.metadata["gate_evidence"].value
    assert run.record["mae_lower_bound"] == described["mae_lower_bound"] > 0
    assert run.record["mae_upper_bound"] == described["mae_upper_bound"]


def test_evidence_taken_with_other_settings_is_taken_again() -> None:
    settings = CheckSettings()
    evidence = _evidence_of(settings)
    described = {
        "gate_evidence": evidence.as_dict(),
        "gate_settings": gate_settings(settings.policy, 7, settings.maturity),
    }
    assert described_evidence(described, settings) == evidence
    stricter = replace(settings, policy=replace(settings.policy, confidence=0.999))
    assert described_evidence(described, stricter) is None
    longer = replace(settings, lookback_days=14)
    assert described_evidence(described, longer) is None
    # A description from before the settings were recorded: taken again.
    assert described_evidence({"gate_evidence": evidence.as_dict()}, settings) is None


def _evidence_of(settings: CheckSettings) -> GateEvidence:
    rng = np.random.default_rng(3)
    predicted = rng.uniform(0.01, 0.05, 200)
    impressions = rng.integers(100, 1000, 200).astype(float)
    observed = rng.binomial(impressions.astype(int), predicted) / impressions
    window = Outcomes(predicted, observed, impressions)
    return assess(window, window, settings.policy.mae_threshold, settings.policy.confidence)
