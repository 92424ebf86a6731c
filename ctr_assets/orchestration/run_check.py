"""One check run, in this process: what `check-retrain` and the demo call."""

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dagster as dg

from ctr_assets.db.connection import Database
from ctr_assets.orchestration.assets import TRIGGER_TAG
from ctr_assets.orchestration.build import build_definitions
from ctr_assets.orchestration.remote import CHECK_ASSETS
from ctr_assets.orchestration.resources import CtrDatabase, ModelStore, RetrainSettings
from ctr_assets.retraining.record import decision_for_run


@dataclass(frozen=True)
class CheckRun:
    run_id: str
    success: bool
    record: dict[str, Any] | None  # None when the run failed before deciding
    checks: dict[str, bool]  # asset check name -> passed


def local_instance() -> dg.DagsterInstance:
    """The instance under DAGSTER_HOME when one is set, else a throwaway one."""
    return (
        dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME")
        else dg.DagsterInstance.ephemeral()
    )


def run_check_in_process(
    instance: dg.DagsterInstance,
    db: Database,
    *,
    trigger: str = "manual",
    model_dir: str | None = None,
    as_of: datetime | None = None,
    training_config: dict[str, Any] | None = None,
    log_level: str = "INFO",
    selection: list[str] | None = None,
    tags: dict[str, str] | None = None,
    retrain_settings: dict[str, Any] | None = None,
) -> CheckRun:
    """Materialises the check once (accuracy, training data, model, decision report), or
    the `selection` of the graph (the rest is read from the latest materializations). The
    accuracy report is not part of a check unless selected: the schedule refreshes it, and
    `ctr-assets report` writes it on demand.
    `retrain_settings` overrides fields of the `retrain_settings` resource (`gate`, ...)."""
    defs = build_definitions()
    ops: dict[str, Any] = {}
    selection = selection or list(CHECK_ASSETS)
    selected = set(selection)
    if as_of is not None and "prediction_accuracy" in selected:
        ops["prediction_accuracy"] = {"config": {"as_of": as_of.isoformat()}}
    if training_config and "ctr_model" in selected:
        ops["retrain_check"] = {"config": training_config}
    result = dg.materialize(
        list(defs.assets or []),  # type: ignore[arg-type]
        instance=instance,
        resources={
            **defs.resources,
            # Bound as an object, not as config: configured values are stored with the
            # run's job snapshot in Dagster's storage, and the URL may carry a password.
            "database": dg.ResourceDefinition.hardcoded_resource(CtrDatabase(url=db.url)),
            "models": ModelStore(directory=model_dir),
            **(
                {"retrain_settings": RetrainSettings(**retrain_settings)}
                if retrain_settings
                else {}
            ),
        },
        run_config={
            "ops": ops,
            "loggers": {"console": {"config": {"log_level": log_level}}},
        },
        tags={TRIGGER_TAG: trigger, **(tags or {})},
        selection=selection,
        raise_on_error=False,
    )
    checks = {
        evaluation.check_name: evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
    }
    return CheckRun(result.run_id, result.success, decision_for_run(db, result.run_id), checks)
