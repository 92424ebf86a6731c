"""The two sensors: accuracy freshness and MAE, and new purchase signals."""

import hashlib
from datetime import UTC, datetime

import dagster as dg
import psycopg2

from ctr_assets import settings
from ctr_assets.db.connection import Database, libpq_url
from ctr_assets.db.purchases import (
    PurchaseCursor,
    first_purchase_cursor,
    new_purchase_signals,
    open_transactions,
)
from ctr_assets.ml.gate import GateEvidence
from ctr_assets.orchestration.assets import TRIGGER_TAG
from ctr_assets.orchestration.automation_settings import AutomationSettings
from ctr_assets.orchestration.jobs import (
    ACCURACY,
    CHAMPION,
    MODEL,
    REPORT,
    TRAINING_DATA,
    retrain_check_job,
)
from ctr_assets.orchestration.resources import CtrDatabase, RetrainSettings
from ctr_assets.retraining.triggers import (
    AccuracyObservation,
    SensorFacts,
    accuracy_sensor_action,
)

_WAITING = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def check_in_progress(instance: dg.DagsterInstance) -> bool:
    """A queued or running run that includes `ctr_model` (a whole-graph run included)."""
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_WAITING)):
        if run.asset_selection is None or MODEL in run.asset_selection:
            return True
    return False


def latest_materialization(instance: dg.DagsterInstance, key: dg.AssetKey):
    """The newest materialization record of `key` (storage id, time, metadata), or None."""
    records = instance.fetch_materializations(key, limit=1).records
    return records[0] if records else None


def observe_accuracy(instance: dg.DagsterInstance) -> AccuracyObservation | None:
    """The newest accuracy materialization, and whether a decision already followed it."""
    latest = latest_materialization(instance, ACCURACY)
    if latest is None:
        return None
    report = latest_materialization(instance, REPORT)
    metadata = latest.asset_materialization.metadata

    def value(name: str):
        entry = metadata.get(name)
        return None if entry is None else entry.value

    champion = value("champion")
    stored = value("gate_evidence")
    return AccuracyObservation(
        storage_id=latest.storage_id,
        materialized_at=datetime.fromtimestamp(latest.timestamp, UTC),
        evidence=GateEvidence.from_dict(stored) if stored else None,
        n_samples=int(value("n_samples") or 0),
        champion=None if champion in (None, "none yet") else champion,
        decided=report is not None and report.storage_id > latest.storage_id,
    )


def build_accuracy_sensor(settings: AutomationSettings) -> dg.SensorDefinition:
    @dg.sensor(
        name="ctr_accuracy_sensor",
        job=retrain_check_job,
        minimum_interval_seconds=settings.accuracy_sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Refreshes prediction_accuracy when it is older than its freshness window; when "
            "the retrain gate finds a fresh accuracy over the threshold, requests ctr_model, "
            "champion_model and retrain_report once for that accuracy (not during a running "
            "check, not within the cooldown after a retrain)."
        ),
    )
    def ctr_accuracy_sensor(context: dg.SensorEvaluationContext, retrain_settings: RetrainSettings):
        instance = context.instance
        last_model = latest_materialization(instance, MODEL)
        facts = SensorFacts(
            now=datetime.now(UTC),
            accuracy=observe_accuracy(instance),
            check_in_progress=check_in_progress(instance),
            last_retrain_at=(
                datetime.fromtimestamp(last_model.timestamp, UTC) if last_model else None
            ),
        )
        action = accuracy_sensor_action(
            facts,
            retrain_settings.policy(),
            settings.accuracy_freshness,
            settings.retrain_cooldown,
        )
        if action.kind == "skip":
            return dg.SkipReason(action.reason)
        earlier = instance.get_runs(
            filters=dg.RunsFilter(tags={"dagster/run_key": action.run_key}), limit=1
        )
        if earlier:
            return dg.SkipReason(
                f"{action.reason}; already requested in run {earlier[0].run_id} "
                f"({earlier[0].status.value.lower()})"
            )
        selection = (
            [ACCURACY, TRAINING_DATA] if action.kind == "refresh" else [MODEL, CHAMPION, REPORT]
        )
        return dg.RunRequest(
            run_key=action.run_key,
            asset_selection=selection,
            tags={TRIGGER_TAG: "accuracy_sensor", "ctr_assets/sensor_reason": action.reason[:200]},
        )

    return ctr_accuracy_sensor


class PurchaseSensorDatabaseError(RuntimeError):
    """The application database did not answer a purchase tick; the cursor stays put."""


def _waiting_words(db: Database) -> str:
    """The transactions still open on the server, in words: any may add signals later."""
    total, oldest = open_transactions(db)
    if not total:
        return ""
    plural = "s" if total > 1 else ""
    return (
        f"; {total} open transaction{plural} on the server may still add some, the oldest "
        + ", ".join(t.describe() for t in oldest)
    )


def build_purchase_sensor(settings: AutomationSettings) -> dg.SensorDefinition:
    @dg.sensor(
        name="purchase_signals_sensor",
        job=retrain_check_job,
        minimum_interval_seconds=settings.purchase_sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "New rows in purchase_signals lead to one check (however many arrived since the "
            "last tick). The cursor is a database snapshot, so a row that commits late is "
            "still counted, exactly once, and a transaction left open elsewhere delays "
            "only its own rows."
        ),
    )
    def purchase_signals_sensor(context: dg.SensorEvaluationContext, database: CtrDatabase):
        try:
            db = database.open()
            if context.cursor is None:
                start = first_purchase_cursor(db)
                context.update_cursor(start.to_json())
                return dg.SkipReason(
                    f"first tick: signals committed from now on (transaction {start.xid} "
                    "on, and those still open) will trigger checks"
                )
            since = PurchaseCursor.from_json(context.cursor)
            if check_in_progress(context.instance):
                return dg.SkipReason(
                    "a check is already queued or running; new signals wait for the next tick"
                )
            batch = new_purchase_signals(db, since)
            waiting = "" if batch.count else _waiting_words(db)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
            raise PurchaseSensorDatabaseError(_unreachable(database, error)) from error
        context.update_cursor(batch.until.to_json())
        if batch.count == 0:
            return dg.SkipReason(f"no new purchase signals (horizon {batch.until.xid}){waiting}")
        return dg.RunRequest(
            run_key=_run_key(batch.since, batch.until),
            tags={
                TRIGGER_TAG: "purchase_signals",
                "ctr_assets/purchases": str(batch.count),
                "ctr_assets/purchase_ids": f"{batch.first_id}-{batch.last_id}",
                "ctr_assets/purchase_xids": f"{batch.since.xid}-{batch.until.xid}",
            },
        )

    return purchase_signals_sensor


def _unreachable(database: CtrDatabase, error: psycopg2.Error) -> str:
    configured = database.url or settings.configured_database_url()
    where = (
        Database(libpq_url(configured)).redacted_url()
        if configured
        else f"the embedded server under {settings.ctr_home()}"
    )
    lines = str(error).strip().splitlines()
    return (
        f"the application database did not answer ({where}: {lines[0] if lines else 'no reply'}); "
        "the purchase cursor stays where it was, so the signals are counted on the first tick "
        "after it is back"
    )


def _run_key(since: PurchaseCursor, until: PurchaseCursor) -> str:
    """One key per batch: two batches never share both cursors (the horizon only grows and,
    at one horizon, the pending xids only shrink)."""
    digest = hashlib.sha256(f"{since.to_json()}|{until.to_json()}".encode()).hexdigest()[:12]
    return f"purchases-{since.xid}-{until.xid}-{digest}"
