"""One retrain check: decide, train a challenger, compare on the hold-out, promote or not.

Every path ends in exactly one decision record. A failure is recorded as `error` and then
raised, so the caller's run fails loudly while the old champion keeps serving.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from ctr_assets.data.accuracy import AccuracyReport
from ctr_assets.data.training_frame import TrainingData
from ctr_assets.ml.decision import AccuracySnapshot, RetrainPolicy, challenger_wins, decide_retrain
from ctr_assets.ml.evaluation import HoldoutScore, predict_ctr, score_on_holdout
from ctr_assets.ml.recency import recency_weights
from ctr_assets.ml.split import holdout_mask
from ctr_assets.ml.training import (
    MIN_TRAINING_ROWS,
    TrainingParams,
    train_ctr_model,
    usable_training_rows,
)
from ctr_assets.models.registry import ModelRegistry, ModelVersion
from ctr_assets.retraining.record import DecisionRecord, Trigger

logger = logging.getLogger(__name__)


class RetrainError(RuntimeError):
    """The check failed; its `error` decision record is stored and attached."""

    def __init__(self, record: DecisionRecord) -> None:
        super().__init__(record.reason)
        self.record = record


@dataclass(frozen=True)
class CheckSettings:
    policy: RetrainPolicy = field(default_factory=RetrainPolicy)
    min_training_rows: int = MIN_TRAINING_ROWS
    recency_half_life_days: float | None = 2.0
    training: TrainingParams = field(default_factory=TrainingParams)


@dataclass(frozen=True)
class CheckOutcome:
    record: DecisionRecord
    challenger: ModelVersion | None = None  # trained this check, promoted or not
    holdout: pd.DataFrame | None = None  # video_id, actual, champion, challenger predictions


def run_retrain_check(
    registry: ModelRegistry,
    accuracy: AccuracyReport,
    training: TrainingData,
    settings: CheckSettings,
    trigger: Trigger,
    *,
    run_id: str | None = None,
    now: datetime | None = None,
) -> CheckOutcome:
    """Runs the check and returns its outcome; the caller stores `outcome.record`."""
    checked_at = now or datetime.now(UTC)
    champion = registry.champion()
    record = DecisionRecord(
        status="no_retrain_needed",
        reason="",
        trigger=trigger,
        checked_at=checked_at,
        as_of=accuracy.as_of,
        mae=accuracy.mae,
        n_samples=accuracy.n_samples,
        threshold=settings.policy.mae_threshold,
        champion_before=champion.version if champion else None,
        champion_after=champion.version if champion else None,
        bad_rows=dict(training.bad_rows),
        run_id=run_id,
    )
    decision = decide_retrain(
        AccuracySnapshot(accuracy.mae, accuracy.n_samples, accuracy.r2),
        settings.policy,
        has_champion=champion is not None,
    )
    if decision.action != "retrain":
        return CheckOutcome(replace(record, status=decision.action, reason=decision.reason))

    frame = training.frame
    usable = usable_training_rows(frame) if len(frame) else 0
    if usable < settings.min_training_rows:
        return CheckOutcome(
            replace(
                record,
                status="insufficient_data",
                reason=(
                    f"{decision.reason}, but only {usable} usable training rows "
                    f"({len(frame)} videos with enough impressions, "
                    f"{sum(training.bad_rows.values())} bad rows left out); "
                    f"at least {settings.min_training_rows} are needed to train"
                ),
            )
        )

    try:
        return _train_and_judge(registry, record, decision.reason, champion, training, settings)
    except Exception as error:
        failed = replace(
            record,
            status="error",
            reason=f"{decision.reason}; the retrain failed: {error}",
            champion_after=record.champion_before,
        )
        logger.exception("retrain check failed")
        raise RetrainError(failed) from error


def _train_and_judge(
    registry: ModelRegistry,
    record: DecisionRecord,
    why: str,
    champion: ModelVersion | None,
    training: TrainingData,
    settings: CheckSettings,
) -> CheckOutcome:
    frame = training.frame
    weights = recency_weights(frame["created_at"], record.as_of, settings.recency_half_life_days)
    trained = train_ctr_model(frame, settings.training, weights)
    challenger_score = score_on_holdout(trained.booster, frame, weights)
    champion_booster = registry.load(champion) if champion else None
    champion_score: HoldoutScore | None = (
        score_on_holdout(champion_booster, frame, weights) if champion_booster else None
    )
    wins, verdict = challenger_wins(champion_score, challenger_score)
    if champion is None:
        verdict = f"the first model becomes champion (hold-out MAE {challenger_score.mae:.4f})"
    params = {
        **settings.training.xgb_params(),
        "num_boost_round": settings.training.num_boost_round,
        "best_iteration": trained.best_iteration,
        "recency_half_life_days": settings.recency_half_life_days,
        "trained_as_of": record.as_of.isoformat(),
    }
    challenger = registry.register(trained, challenger_score, params, record.checked_at)
    if wins:
        registry.promote(challenger.version, record.champion_before, f"{why}; {verdict}")
    held_out = frame.loc[holdout_mask(frame["video_id"]), ["video_id", "ctr"]].copy()
    held_out["challenger"] = predict_ctr(trained.booster, frame.loc[held_out.index])
    if champion_booster is not None:
        held_out["champion"] = predict_ctr(champion_booster, frame.loc[held_out.index])
    judged = replace(
        record,
        status="retrained" if wins else "rejected",
        reason=f"{why}; {verdict}",
        champion_after=challenger.version if wins else record.champion_before,
        challenger=challenger.version,
        mae_before=champion_score.mae if champion_score else None,
        mae_after=challenger_score.mae,
        r2_before=_finite_or_none(champion_score.r2) if champion_score else None,
        r2_after=_finite_or_none(challenger_score.r2),
        training_seconds=trained.training_seconds,
        training_rows=trained.training_rows,
        holdout_rows=challenger_score.rows,
    )
    return CheckOutcome(judged, challenger=challenger, holdout=held_out)


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
