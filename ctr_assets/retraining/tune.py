"""`ctr-assets tune`: search the training config on today's frame, adopt it on evidence.

The frame, the hold-out and the weights are those of a check (`load_training_frame`,
`video_weights` with the check's settings), so a trial is scored as a challenger would be.
The Optuna study is stored in the application database, in its own schema `optuna`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import optuna

from ctr_assets.data.training_frame import RowSelection, load_training_frame
from ctr_assets.db.connection import Database
from ctr_assets.ml.training import TrainingParams, usable_training_rows
from ctr_assets.ml.tuning import Suggest, TuningData, TuningOutcome, run_search, suggest_params
from ctr_assets.ml.weights import video_weights
from ctr_assets.models.training_configs import (
    TrainingConfigRecord,
    adopt_training_config,
    current_training_config,
)
from ctr_assets.retraining.check import CheckSettings

logger = logging.getLogger(__name__)

DEFAULT_STUDY = "ctr_training"


def study_storage(db: Database) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage on the application database, its tables in schema `optuna`.

    SQLAlchemy reads a bare postgresql:// as psycopg 3; the product speaks psycopg2."""
    return optuna.storages.RDBStorage(
        url=db.sqlalchemy_url,
        engine_kwargs={"connect_args": {"options": "-c search_path=optuna"}},
    )


@dataclass(frozen=True)
class TuningReport:
    outcome: TuningOutcome
    replaced: TrainingConfigRecord | None  # the config in force before
    adopted: TrainingConfigRecord | None  # the new config, when adopted
    reason: str

    def as_dict(self) -> dict[str, object]:
        outcome = self.outcome
        return {
            "study": outcome.study_name,
            "trials_run": outcome.trials_run,
            "trials_total": outcome.trials_total,
            "best_trial": outcome.best_trial,
            "best_holdout_mae": outcome.best_mae,
            "current_holdout_mae": outcome.current_mae,
            "holdout_rows": outcome.holdout_rows,
            "adopted": self.adopted is not None,
            "config_before": self.replaced.id if self.replaced else None,
            "config_after": (
                self.adopted.id if self.adopted else (self.replaced.id if self.replaced else None)
            ),
            "best_params": outcome.best_params.as_dict(),
            "reason": self.reason,
            "verdict": outcome.verdict.as_dict(),
        }


def tune_training_config(
    db: Database,
    *,
    trials: int,
    timeout_s: float | None = None,
    study_name: str = DEFAULT_STUDY,
    seed: int = 0,
    settings: CheckSettings | None = None,
    min_impressions: int = 100,
    now: datetime | None = None,
    suggest: Suggest = suggest_params,
) -> TuningReport:
    """Runs the search and adopts its best params when they beat the config in force."""
    settings = settings or CheckSettings()
    # The rows a check would train on (the same horizon), so configs are compared on them.
    selection = RowSelection(min_impressions, settings.horizon_days)
    frame = load_training_frame(db, selection).frame
    usable = usable_training_rows(frame) if len(frame) else 0
    if usable < settings.min_training_rows:
        raise ValueError(
            f"only {usable} usable training rows ({selection.describe()}, outside the "
            f"hold-out); at least {settings.min_training_rows} are needed to tune, so load "
            "more videos"
        )
    # Recency is counted back from the newest video (or `now`): the search compares configs
    # on the data as it is, and data that stopped arriving weeks ago must not weigh nothing.
    weights = video_weights(
        frame,
        now or (frame["created_at"].max() if len(frame) else datetime.now(UTC)),
        settings.recency_half_life_days,
        by_impressions=settings.impression_weighting,
        cap_quantile=settings.impression_cap_quantile,
    )
    in_force = current_training_config(db)
    current = in_force.params if in_force else TrainingParams()
    data = TuningData.of(frame, weights, current.validation_fraction)
    outcome = run_search(
        data,
        current,
        study_storage(db),
        study_name,
        trials=trials,
        timeout_s=timeout_s,
        seed=seed,
        policy=settings.promotion,
        suggest=suggest,
    )
    in_force_name = f"config {in_force.id}" if in_force else "the built-in defaults"
    reason = (
        f"study {study_name} trial {outcome.best_trial} (of {outcome.trials_total}) vs "
        f"{in_force_name}: {outcome.verdict.reason}".replace("challenger", "tuned config").replace(
            "champion", "config in force"
        )
    )
    adopted = None
    if outcome.adopt:
        adopted = adopt_training_config(
            db,
            outcome.best_params,
            replacing=in_force.id if in_force else None,
            reason=reason,
            study_name=study_name,
            trial_number=outcome.best_trial,
            holdout_mae=outcome.best_mae,
            baseline_mae=outcome.current_mae,
            holdout_rows=outcome.holdout_rows,
            evidence=outcome.verdict.as_dict(),
        )
        logger.info("adopted training config %s: %s", adopted.id, reason)
    return TuningReport(outcome, in_force, adopted, reason)
