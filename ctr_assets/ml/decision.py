"""The retrain decision: one pure rule, called by the check, the asset check and the sensor.

The evidence it reads (`ml/gate.py`) is computed once, where the outcomes are read; this
module only says what that evidence means, in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ctr_assets.ml.gate import GateEvidence

Gate = Literal["noise_aware", "naive"]
GATES: tuple[str, ...] = ("noise_aware", "naive")


@dataclass(frozen=True)
class RetrainPolicy:
    """When the champion counts as degraded, and how much evidence that takes.

    `gate`: `noise_aware` (default) decides on the confidence bound of the true MAE and the
    CUSUM; `naive` is the original cron job's rule, observed MAE > threshold.
    """

    mae_threshold: float = 0.02
    min_samples: int = 50
    gate: Gate = "noise_aware"
    confidence: float = 0.99
    dispersion: float | None = None  # None: estimated from each window
    cusum: bool = True
    cusum_k: float = 1.0
    cusum_h: float = 2.5
    cusum_days: int = 28

    def __post_init__(self) -> None:
        if not 0 < self.mae_threshold < 0.5:
            raise ValueError(f"mae_threshold must lie in (0, 0.5), got {self.mae_threshold}")
        if self.min_samples < 2:
            raise ValueError(f"min_samples must be at least 2, got {self.min_samples}")
        if self.gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {self.gate!r}")
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must lie in (0.5, 1), got {self.confidence}")
        if self.dispersion is not None and not self.dispersion >= 1:
            raise ValueError(f"dispersion must be at least 1 (binomial), got {self.dispersion}")
        if not (self.cusum_k >= 0 and self.cusum_h > 0):
            raise ValueError(f"CUSUM needs k >= 0 and h > 0, got {self.cusum_k}, {self.cusum_h}")
        if self.cusum_days < 1:
            raise ValueError(f"cusum_days must be at least 1, got {self.cusum_days}")


@dataclass(frozen=True)
class RetrainDecision:
    action: Literal["retrain", "no_retrain_needed", "insufficient_data"]
    reason: str
    views: dict[str, str]  # what each gate says: {"noise_aware": ..., "naive": ...}


def decide_retrain(
    evidence: GateEvidence | None,
    policy: RetrainPolicy,
    has_champion: bool,
    *,
    left_out: str = "",
) -> RetrainDecision:
    """Retrain when there is no champion, or when the configured gate finds the champion's
    MAE over the threshold on enough mature outcomes. `left_out` says in words which rows
    were not judged (immature, no impressions), for the reason."""
    if not has_champion:
        return RetrainDecision("retrain", "no champion yet", {})
    n = evidence.n_samples if evidence else 0
    if evidence is None or n < policy.min_samples or evidence.mae is None:
        return RetrainDecision(
            "insufficient_data",
            f"only {n} mature resolved predictions of the champion in the window"
            f"{left_out}; at least {policy.min_samples} are needed to judge its accuracy",
            {},
        )
    if evidence.threshold != policy.mae_threshold or evidence.confidence != policy.confidence:
        raise ValueError(
            f"the evidence was computed for threshold {evidence.threshold} at confidence "
            f"{evidence.confidence}, the policy asks {policy.mae_threshold} at "
            f"{policy.confidence}; measure the accuracy again with this policy"
        )
    tau = policy.mae_threshold
    naive = "retrain" if evidence.naive_breach else "no_retrain_needed"
    alarm = evidence.breach or (policy.cusum and evidence.cusum_alarm)
    noisy = "retrain" if alarm else "no_retrain_needed"
    views = {"noise_aware": noisy, "naive": naive}
    over = f"over {n} predictions{left_out}"
    observed = f"observed MAE {evidence.mae:.4f}"
    if policy.gate == "naive":
        verb = "exceeds" if evidence.naive_breach else "is within"
        return RetrainDecision(
            naive, f"{observed} {verb} threshold {tau:.4f} {over} (naive gate)", views
        )
    bounds = (
        f"true MAE between {evidence.mae_lower_bound:.4f} and {evidence.mae_upper_bound:.4f}"
        if evidence.mae_upper_bound is not None
        else f"true MAE at least {evidence.mae_lower_bound:.4f} (no upper bound: the errors "
        "sit below a perfect model's noise floor)"
    )
    interval = (
        f"{bounds} ({policy.confidence:.0%} bounds; {observed}, noise floor "
        f"{evidence.noise_mae:.4f})"
    )
    if evidence.breach:
        return RetrainDecision(
            "retrain", f"{interval}: above threshold {tau:.4f} beyond noise {over}", views
        )
    if policy.cusum and evidence.cusum_alarm:
        return RetrainDecision(
            "retrain",
            f"recent days clearly over threshold {tau:.4f}: CUSUM "
            f"{evidence.cusum_statistic:.1f} > {evidence.cusum_limit:.1f} over "
            f"{evidence.cusum_batches} days of outcomes; 7-day {interval}",
            views,
        )
    return RetrainDecision(
        "no_retrain_needed",
        f"{interval}: not shown to exceed threshold {tau:.4f} {over}",
        views,
    )
