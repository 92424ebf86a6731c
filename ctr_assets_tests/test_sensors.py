"""The sensors, evaluated with `build_sensor_context` on a real PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from ctr_assets.db.connection import Database
from ctr_assets.ml.decision import RetrainPolicy
from ctr_assets.ml.gate import GateEvidence
from ctr_assets.orchestration.automation_settings import AutomationSettings
from ctr_assets.orchestration.jobs import CHAMPION, MODEL, REPORT, retrain_check_job
from ctr_assets.orchestration.resources import CtrDatabase, RetrainSettings
from ctr_assets.orchestration.sensors import build_accuracy_sensor, build_purchase_sensor
from ctr_assets.retraining.triggers import (
    AccuracyObservation,
    SensorFacts,
    accuracy_sensor_action,
)
from ctr_assets_tests.scenarios import Scenario, make_scenario, with_champion

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
FRESH = timedelta(hours=24)
COOLDOWN = timedelta(hours=6)


def _evidence(**changes) -> GateEvidence:
    """A window whose true MAE is clearly over the threshold (the bound is above it)."""
    values = {
        "threshold": 0.02,
        "confidence": 0.99,
        "n_samples": 400,
        "mae": 0.031,
        "noise_mae": 0.004,
        "boundary_mae": 0.0204,
        "mae_lower_bound": 0.0262,
        "mae_upper_bound": 0.0297,
        "excess": 0.0106,
        "excess_se": 0.0008,
        "breach": True,
        "naive_breach": True,
        "dispersion": 1.0,
        "dispersion_note": "binomial assumed",
        "cusum_statistic": 0.0,
        "cusum_limit": 2.5,
        "cusum_alarm": False,
        "cusum_batches": 7,
    }
    values.update(changes)
    return GateEvidence(**values)


WITHIN = _evidence(
    mae=0.0236, mae_lower_bound=0.0, mae_upper_bound=0.011, breach=False, excess=-0.005
)


def _observation(**changes) -> AccuracyObservation:
    values = {
        "storage_id": 10,
        "materialized_at": NOW - timedelta(hours=1),
        "evidence": _evidence(),
        "n_samples": 400,
        "champion": "ctr-a",
        "decided": False,
    }
    values.update(changes)
    return AccuracyObservation(**values)


@pytest.mark.parametrize(
    ("facts", "kind", "words"),
    [
        (SensorFacts(NOW, None, False, None), "refresh", "never been measured"),
        (
            SensorFacts(NOW, _observation(materialized_at=NOW - timedelta(hours=30)), False, None),
            "refresh",
            "30.0 h ago",
        ),
        (SensorFacts(NOW, _observation(), False, None), "retrain", "beyond noise"),
        (SensorFacts(NOW, _observation(decided=True), False, None), "skip", "already decided"),
        (SensorFacts(NOW, _observation(), True, None), "skip", "already queued or running"),
        (
            SensorFacts(NOW, _observation(), False, NOW - timedelta(hours=2)),
            "skip",
            "cooling down",
        ),
        (
            SensorFacts(NOW, _observation(), False, NOW - timedelta(hours=7)),
            "retrain",
            "beyond noise",
        ),
        (
            SensorFacts(NOW, _observation(evidence=WITHIN), False, None),
            "skip",
            "not shown to exceed",
        ),
        (
            SensorFacts(
                NOW,
                _observation(evidence=replace(WITHIN, cusum_statistic=3.1, cusum_alarm=True)),
                False,
                None,
            ),
            "retrain",
            "CUSUM 3.1 > 2.5",
        ),
        (
            SensorFacts(NOW, _observation(evidence=_evidence(n_samples=12)), False, None),
            "skip",
            "only 12",
        ),
        (SensorFacts(NOW, _observation(evidence=None), False, None), "skip", "only 0"),
        (
            SensorFacts(NOW, _observation(evidence=_evidence(threshold=0.03)), False, None),
            "skip",
            "judged at threshold 0.03",
        ),
        (SensorFacts(NOW, _observation(champion=None), False, None), "skip", "no champion"),
    ],
)
def test_accuracy_sensor_action(facts: SensorFacts, kind: str, words: str) -> None:
    action = accuracy_sensor_action(facts, RetrainPolicy(), FRESH, COOLDOWN)
    assert action.kind == kind
    assert words in action.reason
    assert (action.run_key is None) == (kind == "skip")


def test_retrain_run_key_is_tied_to_the_accuracy_materialization() -> None:
    first = accuracy_sensor_action(
        SensorFacts(NOW, _observation(storage_id=7), False, None), RetrainPolicy(), FRESH, COOLDOWN
    )
    later = accuracy_sensor_action(
        SensorFacts(NOW + timedelta(minutes=5), _observation(storage_id=7), False, None),
        RetrainPolicy(),
        FRESH,
        COOLDOWN,
    )
    other = accuracy_sensor_action(
        SensorFacts(NOW, _observation(storage_id=8), False, None), RetrainPolicy(), FRESH, COOLDOWN
    )
    assert first.run_key == later.run_key != other.run_key


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


ACCURACY_SENSOR = build_accuracy_sensor(AutomationSettings())
# The scenarios train their first champion seconds before the breach: without a cooldown
# the breach itself is what the sensor sees.
NO_COOLDOWN_SENSOR = build_accuracy_sensor(AutomationSettings(retrain_cooldown=timedelta(0)))


def _tick_accuracy(instance: dg.DagsterInstance, sensor=NO_COOLDOWN_SENSOR):
    context = dg.build_sensor_context(
        instance=instance, resources={"retrain_settings": RetrainSettings()}
    )
    return sensor(context)


def test_never_measured_accuracy_is_refreshed(instance: dg.DagsterInstance) -> None:
    request = _tick_accuracy(instance)
    assert isinstance(request, dg.RunRequest)
    assert {k.to_user_string() for k in request.asset_selection} == {
        "prediction_accuracy",
        "real_training_data",
    }
    assert request.tags["ctr_assets/trigger"] == "accuracy_sensor"


def _measure(scenario: Scenario) -> None:
    run = scenario.check(selection=["prediction_accuracy", "real_training_data"])
    assert run.success


def test_under_threshold_skips(db: Database, instance: dg.DagsterInstance, tmp_path: Path) -> None:
    scenario = with_champion(make_scenario(db, instance, tmp_path, None), 6, 16)
    _measure(scenario)
    result = _tick_accuracy(instance)
    assert isinstance(result, dg.SkipReason)
    assert "not shown to exceed threshold" in result.skip_message


def test_stale_accuracy_is_refreshed(
    db: Database, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    scenario = with_champion(make_scenario(db, instance, tmp_path, None), 6, 16)
    _measure(scenario)
    assert isinstance(_tick_accuracy(instance), dg.SkipReason)  # fresh and fine
    quickly_stale = build_accuracy_sensor(
        AutomationSettings(accuracy_freshness=timedelta(seconds=1))
    )
    time.sleep(1.5)
    request = _tick_accuracy(instance, quickly_stale)
    assert isinstance(request, dg.RunRequest)
    assert {k.to_user_string() for k in request.asset_selection} == {
        "prediction_accuracy",
        "real_training_data",
    }
    assert "was last measured" in request.tags["ctr_assets/sensor_reason"]


def test_a_breach_is_requested_once_then_waits_then_is_decided_then_cools_down(
    db: Database, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    scenario = with_champion(make_scenario(db, instance, tmp_path, 9), 6, 16)
    _measure(scenario)

    # A fresh breach: exactly one request, for the model and the report only.
    request = _tick_accuracy(instance)
    assert isinstance(request, dg.RunRequest)
    assert set(request.asset_selection) == {MODEL, CHAMPION, REPORT}
    assert request.run_key.startswith("retrain-for-accuracy-")

    # The daemon launched it; while it is queued the sensor waits.
    queued = instance.create_run_for_job(
        retrain_check_job.resolve(asset_graph=_asset_graph()),
        status=dg.DagsterRunStatus.NOT_STARTED,
        tags={"dagster/run_key": request.run_key},
        asset_selection=frozenset({MODEL, CHAMPION, REPORT}),
    )
    waiting = _tick_accuracy(instance)
    assert isinstance(waiting, dg.SkipReason)
    assert "already queued or running" in waiting.skip_message
    instance.report_run_canceled(queued)

    # Same breach, next tick: the request is not repeated.
    repeated = _tick_accuracy(instance)
    assert isinstance(repeated, dg.SkipReason)
    assert f"already requested in run {queued.run_id}" in repeated.skip_message

    # The retrain runs (its challenger is too weak and is rejected: the champion stays).
    retrain = scenario.check(
        selection=["ctr_model", "champion_model", "retrain_report"],
        trigger="accuracy_sensor",
        training_config={"num_boost_round": 1, "learning_rate": 0.01, "max_depth": 1},
    )
    assert retrain.record["status"] == "rejected"
    decided = _tick_accuracy(instance)
    assert isinstance(decided, dg.SkipReason)
    assert "already decided" in decided.skip_message

    # A new measurement still breaches, but a retrain just ran: cooldown.
    _measure(scenario)
    assert isinstance(_tick_accuracy(instance), dg.RunRequest)  # without a cooldown
    cooling = _tick_accuracy(instance, ACCURACY_SENSOR)
    assert isinstance(cooling, dg.SkipReason)
    assert "cooling down" in cooling.skip_message


def _asset_graph():
    from ctr_assets.orchestration.build import build_definitions

    return build_definitions().resolve_asset_graph()


# The purchase_signals sensor.

PURCHASE_SENSOR = build_purchase_sensor(AutomationSettings())


def _tick_purchases(instance: dg.DagsterInstance, db: Database, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"database": CtrDatabase(url=db.url)}
    )
    result = PURCHASE_SENSOR(context)
    return result, context.cursor


def _tick_until_request(instance, db, cursor, seconds: float = 10.0):
    """Ticks until a request comes (another writer on the server may hold the horizon)."""
    deadline = time.monotonic() + seconds
    while True:
        result, cursor = _tick_purchases(instance, db, cursor)
        if isinstance(result, dg.RunRequest) or time.monotonic() > deadline:
            return result, cursor
        time.sleep(0.2)


def _insert(conn, transaction_id: str) -> int:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO purchase_signals (transaction_id, video_id, amount, currency, "
            "occurred_at) VALUES (%s, 'v1', 25.0, 'USD', now()) "
            "ON CONFLICT (transaction_id) DO NOTHING RETURNING id",
            (transaction_id,),
        )
        row = cur.fetchone()
    return row[0] if row else -1


def test_a_late_committing_lower_id_is_still_counted_once(
    db: Database, instance: dg.DagsterInstance
) -> None:
    first, cursor = _tick_purchases(instance, db, None)
    assert isinstance(first, dg.SkipReason)
    assert "first tick" in first.skip_message

    slow, fast = psycopg2.connect(db.url), psycopg2.connect(db.url)
    try:
        low_id = _insert(slow, "tx-slow")  # not committed yet
        high_id = _insert(fast, "tx-fast")
        fast.commit()
        assert low_id < high_id

        # The committed higher id counts at once; the lower one's open transaction stays
        # pending in the cursor instead of holding the count back.
        first_batch, cursor = _tick_purchases(instance, db, cursor)
        assert isinstance(first_batch, dg.RunRequest)
        assert first_batch.tags["ctr_assets/purchases"] == "1"
        assert first_batch.tags["ctr_assets/purchase_ids"] == f"{high_id}-{high_id}"
        slow.commit()

        request, cursor = _tick_until_request(instance, db, cursor)
        assert isinstance(request, dg.RunRequest)
        assert request.tags["ctr_assets/purchases"] == "1"
        assert request.tags["ctr_assets/purchase_ids"] == f"{low_id}-{low_id}"
        assert request.tags["ctr_assets/trigger"] == "purchase_signals"
        assert request.run_key != first_batch.run_key

        # Delivered again: the unique transaction_id keeps it out, nothing triggers.
        assert _insert(fast, "tx-fast") == -1
        fast.commit()
        again, cursor = _tick_purchases(instance, db, cursor)
        assert isinstance(again, dg.SkipReason)
        assert "no new purchase signals" in again.skip_message
    finally:
        slow.close()
        fast.close()


def test_many_purchases_in_one_tick_make_one_run(
    db: Database, instance: dg.DagsterInstance
) -> None:
    _, cursor = _tick_purchases(instance, db, None)
    with psycopg2.connect(db.url) as conn:
        for n in range(25):
            _insert(conn, f"tx-{n}")
    request, cursor = _tick_until_request(instance, db, cursor)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["ctr_assets/purchases"] == "25"
    quiet, _ = _tick_purchases(instance, db, cursor)
    assert isinstance(quiet, dg.SkipReason)


def test_a_restarted_sensor_misses_nothing_and_repeats_nothing(
    db: Database, instance: dg.DagsterInstance
) -> None:
    _, cursor = _tick_purchases(instance, db, None)
    with psycopg2.connect(db.url) as conn:
        _insert(conn, "tx-before-restart")
    request, stored = _tick_until_request(instance, db, cursor)
    assert request.tags["ctr_assets/purchases"] == "1"

    # The daemon restarts: a fresh evaluation starts from the stored cursor only.
    assert json.loads(stored)["xid"] > json.loads(cursor)["xid"]
    with psycopg2.connect(db.url) as conn:
        _insert(conn, "tx-during-restart")
    after, stored_again = _tick_until_request(instance, db, stored)
    assert isinstance(after, dg.RunRequest)
    assert after.tags["ctr_assets/purchases"] == "1"
    nothing, _ = _tick_purchases(instance, db, stored_again)
    assert isinstance(nothing, dg.SkipReason)


def test_purchases_wait_while_a_check_is_queued(db: Database, instance: dg.DagsterInstance) -> None:
    _, cursor = _tick_purchases(instance, db, None)
    with psycopg2.connect(db.url) as conn:
        _insert(conn, "tx-1")
    run = instance.create_run_for_job(
        retrain_check_job.resolve(asset_graph=_asset_graph()),
        status=dg.DagsterRunStatus.NOT_STARTED,
    )
    waiting, same_cursor = _tick_purchases(instance, db, cursor)
    assert isinstance(waiting, dg.SkipReason)
    assert same_cursor == cursor
    instance.report_run_canceled(run)
    request, _ = _tick_until_request(instance, db, cursor)
    assert request.tags["ctr_assets/purchases"] == "1"
