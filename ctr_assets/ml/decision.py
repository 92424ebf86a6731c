"""The two judgement calls: should we retrain, and should the new model replace the old."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ctr_assets.ml.evaluation import HoldoutScore


@dataclass(frozen=True)
class AccuracySnapshot:
    """The champion's live accuracy over the recent window of resolved predictions."""

    mae: float | None
    n_samples: int
    r2: float | None


@dataclass(frozen=True)
class RetrainPolicy:
    """When the champion counts as degraded, and how much evidence that takes."""

    mae_threshold: float = 0.02
    min_samples: int = 50

    def __post_init__(self) -> None:
        if not self.mae_threshold > 0:
            raise ValueError(f"mae_threshold must be positive, got {self.mae_threshold}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, got {self.min_samples}")


@dataclass(frozen=True)
class RetrainDecision:
    action: Literal["retrain", "no_retrain_needed", "insufficient_data"]
    reason: str


def decide_retrain(
    accuracy: AccuracySnapshot, policy: RetrainPolicy, has_champion: bool
) -> RetrainDecision:
    """Retrain when there is no champion or its MAE is above the threshold on enough data."""
    if not has_champion:
        return RetrainDecision("retrain", "no champion yet")
    if accuracy.n_samples < policy.min_samples:
        return RetrainDecision(
            "insufficient_data",
            f"only {accuracy.n_samples} resolved predictions of the champion in the window; "
            f"at least {policy.min_samples} are needed to judge its accuracy",
        )
    if accuracy.mae is None:
        raise ValueError(
            f"the accuracy snapshot has {accuracy.n_samples} samples but no MAE; "
            "compute the MAE whenever there are samples"
        )
    over = f"over {accuracy.n_samples} predictions"
    if accuracy.mae > policy.mae_threshold:
        return RetrainDecision(
            "retrain",
            f"MAE {accuracy.mae:.4f} exceeds threshold {policy.mae_threshold:.4f} {over}",
        )
    return RetrainDecision(
        "no_retrain_needed",
        f"MAE {accuracy.mae:.4f} is within threshold {policy.mae_threshold:.4f} {over}",
    )


def challenger_wins(champion: HoldoutScore | None, challenger: HoldoutScore) -> tuple[bool, str]:
    """The challenger is promoted only if its hold-out MAE is strictly lower; a tie keeps the
    champion, which has the advantage of being known.

    Both scores must come from the same hold-out rows (`score_on_holdout` on one frame).
    """
    if champion is None:
        return True, "no champion yet"
    if champion.rows != challenger.rows:
        raise ValueError(
            f"champion was scored on {champion.rows} hold-out rows and challenger on "
            f"{challenger.rows}; score both on the same training frame"
        )
    scores = (
        f"challenger hold-out MAE {challenger.mae:.4f} vs champion {champion.mae:.4f} "
        f"on {challenger.rows} videos"
    )
    if challenger.mae < champion.mae:
        return True, f"{scores}: the challenger is better"
    return False, f"{scores}: the challenger is not better, the champion stays"
