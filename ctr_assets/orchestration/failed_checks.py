"""Every check that started leaves a decision record, a killed one included.

A check run whose worker was killed (Dagster marks it failed: its code server sees the
process die, or run monitoring gives up on it) or that failed before deciding stored no
record. This run-failure sensor writes its `error` record, with the run id and the cause
Dagster logged (`retraining/failed_run.py`).
"""

from datetime import UTC, datetime

import dagster as dg

from ctr_assets.orchestration.assets import TRIGGER_TAG
from ctr_assets.orchestration.jobs import REPORT, RETRAIN_CHECK_JOB
from ctr_assets.orchestration.resources import CtrDatabase, ModelStore, RetrainSettings
from ctr_assets.retraining.failed_run import record_failed_check
from ctr_assets.retraining.record import TRIGGERS

# Dagster's words when a run's process died (`get_run_crash_explanation`).
_CRASH_WORDS = (" was terminated by signal ", " unexpectedly exited with code ")


def is_check_run(run: dg.DagsterRun) -> bool:
    """A run that was to record a decision: the whole check job, or any run of the report."""
    if not run.asset_selection:  # None or empty: every asset of the job
        return run.job_name == RETRAIN_CHECK_JOB
    return REPORT in run.asset_selection


def failure_cause(context: dg.RunFailureSensorContext) -> str:
    """What killed the run, in Dagster's words: the process's end, else the failed steps."""
    run_id = context.dagster_run.run_id
    for entry in context.instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        message = entry.message or ""
        if any(words in message for words in _CRASH_WORDS):
            return message.split(". ")[0].removeprefix("[DagsterApiServer] ").rstrip(".")
    steps = [
        f"step {event.step_key} failed: {_first_line(event)}"
        for event in context.get_step_failure_events()
    ]
    if steps:
        return "; ".join(steps)
    return context.failure_event.message or "the run failed"


def _first_line(event: dg.DagsterEvent) -> str:
    error = event.step_failure_data.error if event.step_failure_data else None
    while error is not None and error.cls_name == "DagsterExecutionStepExecutionError":
        error = error.cause or error.context  # Dagster's wrapper: the step's own error is under it
    text = error.message if error else (event.message or "no message")
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


@dg.run_failure_sensor(
    name="ctr_record_failed_check",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    description=(
        "Writes the `error` decision record of a check run that failed without one (its "
        "worker killed, or a step failing before the decision), with the cause."
    ),
)
def record_failed_check_run(
    context: dg.RunFailureSensorContext,
    database: CtrDatabase,
    models: ModelStore,
    retrain_settings: RetrainSettings,
):
    run = context.dagster_run
    if not is_check_run(run):
        return dg.SkipReason(f"run {run.run_id} was not a check (no retrain_report)")
    times = context.instance.get_run_record_by_id(run.run_id)
    if times is None:
        return dg.SkipReason(f"run {run.run_id} is no longer in Dagster's storage")
    started_at = (
        datetime.fromtimestamp(times.start_time, UTC)
        if times.start_time
        else times.create_timestamp.replace(tzinfo=times.create_timestamp.tzinfo or UTC)
    )
    failed_at = datetime.fromtimestamp(times.end_time, UTC) if times.end_time else datetime.now(UTC)
    trigger = run.tags.get(TRIGGER_TAG, "manual")
    stored = record_failed_check(
        models.registry(database.open()),
        run.run_id,
        trigger if trigger in TRIGGERS else "manual",  # type: ignore[arg-type]
        failure_cause(context),
        started_at,
        failed_at,
        retrain_settings.mae_threshold,
    )
    if stored is None:
        return dg.SkipReason(f"run {run.run_id} recorded its own decision")
    return dg.SkipReason(f"run {run.run_id}: recorded status error: {stored.reason}")
