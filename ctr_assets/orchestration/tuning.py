"""The hyperparameter search as a Dagster job, on demand only (no schedule): launched from
the UI's Launchpad, it runs `ctr-assets tune`'s search and reports the verdict."""

import dagster as dg
from pydantic import Field

from ctr_assets.ml.training import TrainingParams
from ctr_assets.orchestration.resources import CtrDatabase, RetrainSettings
from ctr_assets.retraining.tune import DEFAULT_STUDY, tune_training_config

TUNE_JOB = "tune_training_config_job"


class TuningConfig(dg.Config):
    trials: int = Field(default=20, description="Trials to run in this session.")
    timeout_s: int | None = Field(
        default=None, description="Stop starting trials after this many seconds."
    )
    study: str = Field(
        default=DEFAULT_STUDY, description="Optuna study name; an existing study resumes."
    )
    seed: int = Field(default=0, description="Seed of Optuna's sampler.")


@dg.op(tags={"kind": "optuna"})
def tune_training_config_op(
    context: dg.OpExecutionContext,
    config: TuningConfig,
    database: CtrDatabase,
    retrain_settings: RetrainSettings,
) -> None:
    """Searches XGBoost settings (Optuna, the study in the application PostgreSQL); the best
    becomes the training config of the next checks only when it beats the config in force
    on the promotion hold-out by the promotion rule."""
    report = tune_training_config(
        database.open(),
        trials=config.trials,
        timeout_s=config.timeout_s,
        study_name=config.study,
        seed=config.seed,
        settings=retrain_settings.check_settings(TrainingParams()),
        min_impressions=retrain_settings.min_impressions,
    )
    figures = report.as_dict()
    context.log.info(report.reason)
    context.add_output_metadata(
        {
            "adopted": figures["adopted"],
            "best_holdout_mae": figures["best_holdout_mae"],
            "current_holdout_mae": figures["current_holdout_mae"],
            "trials_run": figures["trials_run"],
            "trials_total": figures["trials_total"],
            "reason": dg.MetadataValue.text(report.reason),
            "best_params": dg.MetadataValue.json(figures["best_params"]),
        }
    )


@dg.job(
    name=TUNE_JOB,
    description="Hyperparameter search for the training config of the next checks.",
    executor_def=dg.in_process_executor,
)
def tune_training_config_job() -> None:
    tune_training_config_op()


def tuning_definitions() -> dg.Definitions:
    """The search job, on demand; merged into the code location by `definitions.py`."""
    return dg.Definitions(jobs=[tune_training_config_job])
