"""Promotion on evidence: the challenger replaces the champion only when it is better
beyond noise on the same hold-out videos, and no platform (nor ROAS) gets clearly worse.

The paired comparison
---------------------
Both models predict the same hold-out videos i, with observed CTR y_i and weight w_i
(as in training: the video's impressions, capped, times its recency; see
`ctr_assets.ml.weights`). A video's observed CTR is the more exact the more impressions
it has, so a model is judged mostly where the outcome says something. The per-video
advantage of the challenger is

    d_i = |champion_i - y_i| - |challenger_i - y_i|

Pairing cancels what both models share (each video's own difficulty and its label
noise), so the comparison is far sharper than two separate MAEs. The improvement is the
weighted mean D = sum(w d) / sum(w), with the sandwich standard error
se = sqrt(sum(w^2 (d - D)^2)) / sum(w) (videos independent; weights fixed, so the
standard error is that of a ratio estimator and holds for uneven weights too). The
challenger is promoted only when

    D - q * se > min_improvement * champion_mae,   q = Phi^-1(confidence)

i.e. when even the pessimistic end of its advantage is a real gain (by default at least
1% of the champion's hold-out MAE: a reseeded copy of the champion is not an upgrade).

Slices
------
For each platform with at least `slice_min_rows` hold-out videos, the same paired
statistic is taken the other way round (how much worse the challenger is there). The
challenger is rejected when a platform is *clearly* worse: even the optimistic end of the
worsening, D_s - q * se_s, is above `slice_tolerance` times the champion's MAE on that
platform. The same rule guards the ROAS error where ROAS is predicted: a CTR prediction's
ROAS error on a video is its CTR error times the video's value per click over cost per
impression (revenue / clicks over spend / impressions), since ROAS = CTR * that ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class PromotionPolicy:
    confidence: float = 0.95
    min_improvement: float = 0.01  # share of the champion's hold-out MAE
    slice_tolerance: float = 0.05  # share of the champion's MAE on the slice
    slice_min_rows: int = 30

    def __post_init__(self) -> None:
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must lie in (0.5, 1), got {self.confidence}")
        if not self.min_improvement >= 0:
            raise ValueError(f"min_improvement must be 0 or more, got {self.min_improvement}")
        if not self.slice_tolerance >= 0:
            raise ValueError(f"slice_tolerance must be 0 or more, got {self.slice_tolerance}")
        if self.slice_min_rows < 2:
            raise ValueError(f"slice_min_rows must be at least 2, got {self.slice_min_rows}")


@dataclass(frozen=True)
class PairedDifference:
    """A weighted paired mean and its confidence interval."""

    mean: float
    lower: float
    upper: float
    rows: int


@dataclass(frozen=True)
class SliceComparison:
    name: str
    rows: int
    champion_mae: float
    challenger_mae: float
    worsening: PairedDifference  # challenger error minus champion error
    regressed: bool


@dataclass(frozen=True)
class PromotionVerdict:
    promote: bool
    reason: str
    champion_mae: float
    challenger_mae: float
    improvement: PairedDifference  # champion error minus challenger error
    needed: float  # the lower bound of the improvement must exceed this
    confidence: float
    slices: tuple[SliceComparison, ...]
    roas: SliceComparison | None

    def as_dict(self) -> dict[str, object]:
        def pair(value: PairedDifference) -> dict[str, float | int]:
            return dict(value.__dict__)

        def comparison(value: SliceComparison) -> dict[str, object]:
            return {**value.__dict__, "worsening": pair(value.worsening)}

        return {
            "promote": self.promote,
            "champion_mae": self.champion_mae,
            "challenger_mae": self.challenger_mae,
            "improvement": pair(self.improvement),
            "needed": self.needed,
            "confidence": self.confidence,
            "slices": [comparison(s) for s in self.slices],
            "roas": comparison(self.roas) if self.roas else None,
        }


def paired_difference(
    difference: np.ndarray, weights: np.ndarray, confidence: float
) -> PairedDifference:
    """Weighted mean of per-video differences with its two-sided `confidence` interval
    (each side at `confidence`, as the one-sided rules use them)."""
    if len(difference) < 2:
        raise ValueError(f"a paired comparison needs at least 2 rows, got {len(difference)}")
    total = float(weights.sum())
    mean = float(weights @ difference / total)
    se = float(np.sqrt(np.sum(weights**2 * (difference - mean) ** 2)) / total)
    q = NormalDist().inv_cdf(confidence)
    return PairedDifference(mean, mean - q * se, mean + q * se, len(difference))


def _weighted_mae(errors: np.ndarray, weights: np.ndarray) -> float:
    return float(weights @ errors / weights.sum())


def _compare_slice(
    name: str,
    champion_error: np.ndarray,
    challenger_error: np.ndarray,
    weights: np.ndarray,
    policy: PromotionPolicy,
) -> SliceComparison:
    champion_mae = _weighted_mae(champion_error, weights)
    worsening = paired_difference(challenger_error - champion_error, weights, policy.confidence)
    return SliceComparison(
        name=name,
        rows=len(weights),
        champion_mae=champion_mae,
        challenger_mae=_weighted_mae(challenger_error, weights),
        worsening=worsening,
        regressed=worsening.lower > policy.slice_tolerance * champion_mae,
    )


def judge_promotion(
    actual: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    weights: np.ndarray | None,
    platforms: np.ndarray,
    policy: PromotionPolicy,
    roas_per_ctr: np.ndarray | None = None,
) -> PromotionVerdict:
    """Judges a challenger against the champion on the same hold-out rows (see the module
    docstring). `roas_per_ctr` (NaN where ROAS is unknown) switches the ROAS guard on."""
    rows = len(actual)
    if not (len(champion) == len(challenger) == len(platforms) == rows):
        raise ValueError("actual, champion, challenger and platforms need one value per row")
    weights = np.ones(rows) if weights is None else np.asarray(weights, dtype=np.float64)
    champion_error = np.abs(champion - actual)
    challenger_error = np.abs(challenger - actual)
    champion_mae = _weighted_mae(champion_error, weights)
    challenger_mae = _weighted_mae(challenger_error, weights)
    improvement = paired_difference(champion_error - challenger_error, weights, policy.confidence)

    slices = []
    for name in sorted({str(p) for p in platforms}):
        mine = platforms.astype(str) == name
        if mine.sum() >= policy.slice_min_rows:
            slices.append(
                _compare_slice(
                    name, champion_error[mine], challenger_error[mine], weights[mine], policy
                )
            )
    roas = None
    if roas_per_ctr is not None:
        known = np.isfinite(roas_per_ctr)
        if known.sum() >= policy.slice_min_rows:
            scale = roas_per_ctr[known]
            roas = _compare_slice(
                "ROAS",
                champion_error[known] * scale,
                challenger_error[known] * scale,
                weights[known],
                policy,
            )

    needed = policy.min_improvement * champion_mae
    figures = (
        f"challenger hold-out MAE {challenger_mae:.4f} vs champion {champion_mae:.4f} on "
        f"{rows} videos, improvement {improvement.mean:+.4f} "
        f"({policy.confidence:.0%} bounds {improvement.lower:+.4f} to {improvement.upper:+.4f}, "
        f"needed above {needed:.4f})"
    )
    regressed = [s for s in (*slices, *([roas] if roas else [])) if s.regressed]
    if improvement.lower <= needed:
        reason = f"{figures}: the advantage is within noise, the champion stays"
    elif regressed:
        worst = ", ".join(
            f"{s.name} {s.challenger_mae:.4f} vs {s.champion_mae:.4f} "
            f"(worse by {s.worsening.mean:+.4f}, at least {s.worsening.lower:+.4f} > "
            f"tolerance {policy.slice_tolerance * s.champion_mae:.4f})"
            for s in regressed
        )
        reason = f"{figures}, but clearly worse on {worst}: the champion stays"
    else:
        reason = f"{figures}: the challenger is better beyond noise, no slice worse"
    return PromotionVerdict(
        promote=improvement.lower > needed and not regressed,
        reason=reason,
        champion_mae=champion_mae,
        challenger_mae=challenger_mae,
        improvement=improvement,
        needed=needed,
        confidence=policy.confidence,
        slices=tuple(slices),
        roas=roas,
    )
