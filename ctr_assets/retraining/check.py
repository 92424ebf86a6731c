"""One retrain check: decide, train a challenger, judge it on the hold-out, promote or not.

The check runs in two steps so that the evidence is judged before anything changes:
`judge_retrain_check` decides, trains and compares (the champion untouched), and
`JudgedCheck.conclude` then promotes the challenger only if the verdict says so. Every path
ends in exactly one decision record. A failure is recorded as `error` and then raised, so
the caller's run fails loudly while the old champion keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ctr_assets.data.accuracy import AccuracyReport, Maturity
from ctr_assets.data.training_frame import within_horizon
from ctr_assets.ml.decision import RetrainPolicy, decide_retrain
from ctr_assets.ml.evaluation import HoldoutScore, score_predictions
from ctr_assets.ml.model_files import ModelFileError
from ctr_assets.ml.promotion import PromotionPolicy, PromotionVerdict, judge_promotion
from ctr_assets.ml.recency import horizon_days as recency_horizon_days
from ctr_assets.ml.training import MIN_TRAINING_ROWS, TrainingParams
from ctr_assets.ml.weights import IMPRESSION_CAP_QUANTILE, Weighting
from ctr_assets.models.registry import ModelRegistry, ModelVersion
from ctr_assets.retraining.record import DecisionRecord, Trigger
from ctr_assets.retraining.training_set import TrainingSet, TrainingSource

logger = logging.getLogger(__name__)


class RetrainError(RuntimeError):
    """The check failed; its `error` decision record is stored and attached."""

    def __init__(self, record: DecisionRecord) -> None:
        super().__init__(record.reason)
        self.record = record


@dataclass(frozen=True)
class CheckSettings:
    policy: RetrainPolicy = field(default_factory=RetrainPolicy)
    promotion: PromotionPolicy = field(default_factory=PromotionPolicy)
    maturity: Maturity = field(default_factory=Maturity)
    lookback_days: int = 7
    min_training_rows: int = MIN_TRAINING_ROWS
    recency_half_life_days: float | None = 2.0
    # Videos older than this many half-lives before the newest are not read (`RowSelection`).
    recency_horizon_half_lives: float | None = 7.0
    # On: videos weigh their impressions (capped at this quantile) times recency, see
    # `ctr_assets.ml.weights`. Off (the default, see the README): recency alone.
    impression_weighting: bool = False
    impression_cap_quantile: float = IMPRESSION_CAP_QUANTILE
    training: TrainingParams = field(default_factory=TrainingParams)

    @property
    def horizon_days(self) -> float | None:
        """How far before the newest video the training read reaches (None: every video)."""
        return recency_horizon_days(self.recency_half_life_days, self.recency_horizon_half_lives)


@dataclass(frozen=True)
class CheckOutcome:
    record: DecisionRecord
    challenger: ModelVersion | None = None  # trained this check, promoted or not
    holdout: pd.DataFrame | None = None  # video_id, ctr, champion and challenger predictions
    verdict: PromotionVerdict | None = None


@dataclass(frozen=True)
class JudgedCheck:
    """A check whose evidence is judged; `conclude` promotes (or not) and records."""

    registry: ModelRegistry
    outcome: CheckOutcome
    promote: bool = False  # the first model, or a challenger the verdict promotes

    def conclude(self) -> CheckOutcome:
        """Promotes when the verdict says so, then lets the registry's mirror follow."""
        return self._mirrored(self._promoted())

    def _promoted(self) -> CheckOutcome:
        outcome, challenger = self.outcome, self.outcome.challenger
        if not self.promote or challenger is None:
            return outcome
        record = outcome.record
        try:
            self.registry.promote(challenger.version, record.champion_before, record.reason)
        except Exception as error:
            failed = replace(
                record,
                status="error",
                reason=f"{record.reason}; but the promotion failed, the champion is "
                f"unchanged: {error}",
                champion_after=record.champion_before,
            )
            logger.exception("promotion failed")
            raise RetrainError(failed) from error
        return replace(
            outcome,
            record=replace(record, status="retrained", champion_after=challenger.version),
        )

    def _mirrored(self, outcome: CheckOutcome) -> CheckOutcome:
        """Mirrors the registry (MLflow, when configured); a failure is only reported, and
        the next check's sync retries whatever this one missed."""
        record = outcome.record
        pending = {record.challenger: record.as_json_dict()} if record.challenger else {}
        mirror = self.registry.sync_mirror(pending)
        if mirror is None:
            return outcome
        if mirror["status"] != "mirrored":
            logger.warning("the MLflow mirror failed: %s", mirror["error"])
        return replace(outcome, record=replace(record, mlflow_mirror=mirror))


def judge_retrain_check(
    registry: ModelRegistry,
    accuracy: AccuracyReport,
    training: TrainingSource,
    settings: CheckSettings,
    trigger: Trigger,
    *,
    run_id: str | None = None,
    now: datetime | None = None,
    remeasure: Callable[[str | None], AccuracyReport] | None = None,
) -> JudgedCheck:
    """Decides and, when it should, trains and judges a challenger; promotes nothing.

    The accuracy judged must be the current champion's: if the champion changed since it
    was measured (a promotion or rollback in between), `remeasure` measures it again.
    The training rows are read from `training` only once the decision is to train.
    """
    checked_at = now or datetime.now(UTC)
    champion = registry.champion()
    champion_version = champion.version if champion else None
    remeasured = ""
    if accuracy.model_version != champion_version:
        if remeasure is None:
            raise ValueError(
                f"the accuracy was measured for {accuracy.model_version}, but the champion "
                f"is {champion_version}; measure the champion's accuracy"
            )
        remeasured = (
            f" (re-measured: the accuracy was of {accuracy.model_version}, the champion "
            f"is now {champion_version})"
        )
        accuracy = remeasure(champion_version)
    record = _record_of(accuracy, settings, training, trigger, checked_at, champion, run_id)
    if champion is not None:
        try:  # a champion whose file is damaged can be neither served nor compared with
            registry.verify_champion(champion)
        except ModelFileError as error:
            raise RetrainError(replace(record, status="error", reason=str(error))) from error
    decision = decide_retrain(
        accuracy.evidence,
        settings.policy,
        has_champion=champion is not None,
        left_out=_left_out(accuracy),
    )
    record = replace(record, views=decision.views)
    why = decision.reason + remeasured
    if decision.action != "retrain":
        return JudgedCheck(
            registry, CheckOutcome(replace(record, status=decision.action, reason=why))
        )

    try:
        rows = training.read()
    except Exception as error:
        failed = replace(
            record, status="error", reason=f"{why}; reading the training data failed: {error}"
        )
        logger.exception("reading the training data failed")
        raise RetrainError(failed) from error
    record = replace(record, bad_rows=dict(rows.bad_rows))
    usable = rows.usable_rows
    if usable < settings.min_training_rows:
        return JudgedCheck(
            registry,
            CheckOutcome(
                replace(
                    record,
                    status="insufficient_data",
                    reason=(
                        f"{why}, but only {usable} usable training rows "
                        f"({rows.rows} videos with enough impressions"
                        f"{within_horizon(settings.horizon_days)}, "
                        f"{sum(rows.bad_rows.values())} bad rows left out); "
                        f"at least {settings.min_training_rows} are needed to train"
                    ),
                )
            ),
        )
    try:
        outcome = _train_and_judge(
            registry, record, why, champion, rows, settings, accuracy.roas_samples > 0
        )
    except Exception as error:
        failed = replace(
            record,
            status="error",
            reason=f"{why}; the retrain failed: {error}",
            champion_after=record.champion_before,
        )
        logger.exception("retrain check failed")
        raise RetrainError(failed) from error
    promote = outcome.verdict.promote if outcome.verdict else True
    return JudgedCheck(registry, outcome, promote)


def _left_out(accuracy: AccuracyReport) -> str:
    parts = [
        f"{count} {label}"
        for count, label in (
            (accuracy.immature_rows, "immature"),
            (accuracy.no_impressions_rows, "without impressions"),
            (accuracy.bad_rows["invalid_ctr"], "with a CTR outside [0, 1]"),
        )
        if count
    ]
    return f" ({', '.join(parts)} left out)" if parts else ""


def _record_of(
    accuracy: AccuracyReport,
    settings: CheckSettings,
    training: TrainingSource,
    trigger: Trigger,
    checked_at: datetime,
    champion: ModelVersion | None,
    run_id: str | None,
) -> DecisionRecord:
    evidence = accuracy.evidence
    return DecisionRecord(
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
        gate=settings.policy.gate,
        confidence=settings.policy.confidence,
        noise_mae=evidence.noise_mae if evidence else None,
        boundary_mae=evidence.boundary_mae if evidence else None,
        mae_lower_bound=evidence.mae_lower_bound if evidence else None,
        mae_upper_bound=evidence.mae_upper_bound if evidence else None,
        dispersion=evidence.dispersion if evidence else None,
        immature_rows=accuracy.immature_rows,
        no_impressions_rows=accuracy.no_impressions_rows,
        invalid_rows=accuracy.bad_rows["invalid_ctr"],
        cusum=(
            {
                "statistic": evidence.cusum_statistic,
                "limit": evidence.cusum_limit,
                "alarm": evidence.cusum_alarm,
                "days": evidence.cusum_batches,
                "on": settings.policy.cusum,
            }
            if evidence
            else None
        ),
    )


def _train_and_judge(
    registry: ModelRegistry,
    record: DecisionRecord,
    why: str,
    champion: ModelVersion | None,
    training: TrainingSet,
    settings: CheckSettings,
    roas_predicted: bool,
) -> CheckOutcome:
    weighting = Weighting(
        settings.recency_half_life_days,
        settings.impression_weighting,
        settings.impression_cap_quantile,
    )
    fitted = training.fit(
        settings.training,
        record.as_of,
        weighting,
        registry.load(champion) if champion is not None else None,
    )
    trained, held_out = fitted.trained, fitted.holdout
    if len(held_out) < 2:
        raise ValueError(
            f"the frame has {len(held_out)} hold-out rows out of {training.rows}; at least 2 "
            "are needed to judge a model, so load more videos"
        )
    weights = held_out["weight"].to_numpy()
    holdout_weights = None if np.isnan(weights).all() else weights
    actual = held_out["ctr"].to_numpy()
    challenger_predicted = held_out["challenger"].to_numpy()
    challenger_score = score_predictions(actual, challenger_predicted, holdout_weights)
    comparison = held_out[
        ["video_id", "ctr", "challenger", *(["champion"] if champion is not None else [])]
    ]

    verdict: PromotionVerdict | None = None
    champion_score: HoldoutScore | None = None
    if champion is not None:
        champion_predicted = held_out["champion"].to_numpy()
        champion_score = score_predictions(actual, champion_predicted, holdout_weights)
        verdict = judge_promotion(
            actual,
            champion_predicted,
            challenger_predicted,
            holdout_weights,
            held_out["platform"].astype(str).to_numpy(),
            settings.promotion,
            held_out["roas_per_ctr"].to_numpy() if roas_predicted else None,
        )
    params = {
        **settings.training.xgb_params(),
        "num_boost_round": settings.training.num_boost_round,
        "best_iteration": trained.best_iteration,
        "recency_half_life_days": settings.recency_half_life_days,
        "recency_horizon_half_lives": settings.recency_horizon_half_lives,
        "impression_weighting": settings.impression_weighting,
        "impression_cap_quantile": settings.impression_cap_quantile,
        "trained_as_of": record.as_of.isoformat(),
    }
    challenger = registry.register(trained, challenger_score, params, record.checked_at)
    judged = replace(
        record,
        status="rejected",
        reason=f"{why}; {verdict.reason}" if verdict else why,
        challenger=challenger.version,
        mae_before=champion_score.mae if champion_score else None,
        mae_after=challenger_score.mae,
        r2_before=_finite_or_none(champion_score.r2) if champion_score else None,
        r2_after=_finite_or_none(challenger_score.r2),
        training_seconds=trained.training_seconds,
        training_rows=trained.training_rows,
        holdout_rows=challenger_score.rows,
        **(_verdict_keys(verdict) if verdict else {}),
    )
    if verdict is None:
        judged = replace(
            judged,
            reason=f"{why}; the first model becomes champion "
            f"(hold-out MAE {challenger_score.mae:.4f})",
        )
    return CheckOutcome(judged, challenger, comparison, verdict)


def _verdict_keys(verdict: PromotionVerdict) -> dict[str, Any]:
    def slice_keys(comparison) -> dict[str, Any]:
        return {
            "name": comparison.name,
            "rows": comparison.rows,
            "mae_before": comparison.champion_mae,
            "mae_after": comparison.challenger_mae,
            "worse_by": comparison.worsening.mean,
            "worse_by_at_least": comparison.worsening.lower,
            "regressed": comparison.regressed,
        }

    return {
        "improvement": {
            "mae": verdict.improvement.mean,
            "lower": verdict.improvement.lower,
            "upper": verdict.improvement.upper,
            "rows": verdict.improvement.rows,
            "confidence": verdict.confidence,
            "needed": verdict.needed,
        },
        "slices": [slice_keys(s) for s in verdict.slices],
        "roas": slice_keys(verdict.roas) if verdict.roas else None,
    }


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
