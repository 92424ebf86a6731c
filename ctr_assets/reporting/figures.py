"""A figure of the accuracy report: its value, why it is missing, and its target's verdict.

Every figure carries a one-line definition (`DEFINITIONS`, shown beside it in the report).
A figure that cannot be computed has no value and says why in words: never a 0 standing in
for "unknown".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ctr_assets.data.accuracy import Maturity

Verdict = Literal["met", "missed", "undecided"]


@dataclass(frozen=True)
class Target:
    """A bound a figure should stay under (`above=False`) or over (`above=True`)."""

    bound: float
    above: bool
    percent: bool = False  # shown as a percentage

    def words(self) -> str:
        shown = f"{self.bound:.0%}" if self.percent else f"{self.bound:g}"
        return f"{'above' if self.above else 'under'} {shown}"

    def verdict(
        self, value: float, lower: float | None = None, upper: float | None = None
    ) -> Verdict:
        """Met or missed on the value; with a confidence interval (`lower`, `upper`), met
        or missed only when the whole interval is on one side of the bound, else
        undecided. No upper bound (errors below a perfect model's noise) decides nothing
        on the upper side."""
        if lower is None and upper is None:
            if self.above:
                return "met" if value > self.bound else "missed"
            return "met" if value < self.bound else "missed"
        high = math.inf if upper is None else upper
        low = -math.inf if lower is None else lower
        inside, outside = (low > self.bound, high < self.bound)
        if self.above:
            return "met" if inside else "missed" if outside else "undecided"
        return "met" if outside else "missed" if inside else "undecided"


@dataclass(frozen=True)
class ReportSettings:
    """The targets and the gate's settings the report judges by."""

    mae_threshold: float = 0.02  # the CTR MAE target is the retrain threshold
    roas_accuracy_target: float = 0.85
    r2_target: float = 0.88
    lookback_days: int = 7
    confidence: float = 0.99
    dispersion: float | None = None
    min_samples: int = 50
    maturity: Maturity = field(default_factory=Maturity)


@dataclass(frozen=True)
class Figure:
    """One figure. `value` None means unknown, and `missing` says why."""

    value: float | int | None
    missing: str | None = None
    lower: float | None = None  # confidence interval, where the figure has one
    upper: float | None = None
    target: str | None = None  # the target in words ("under 0.02")
    verdict: Verdict | None = None

    def __post_init__(self) -> None:
        if self.value is None and not self.missing:
            raise ValueError("a figure without a value must say why it is missing")
        if isinstance(self.value, float) and not math.isfinite(self.value):
            raise ValueError(f"a figure is a finite number, got {self.value}")


def figure(
    value: float | int | None,
    missing: str,
    target: Target | None = None,
    lower: float | None = None,
    upper: float | None = None,
) -> Figure:
    """The figure of `value` (`missing` is the words when it is None), judged against
    `target` when there is one."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return Figure(None, missing, target=target.words() if target else None)
    return Figure(
        value,
        lower=lower,
        upper=upper,
        target=target.words() if target else None,
        verdict=target.verdict(value, lower, upper) if target else None,
    )


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def definitions(lookback_days: int, confidence: float) -> dict[str, str]:
    """One line per figure and table, with the settings the report was made with."""
    bounds = f"{confidence:.0%} bounds"
    return {
        # Accuracy over the period.
        "ctr_mae": (
            "Mean |predicted CTR - observed CTR| over every judged live prediction made in the "
            f"period (observed CTR = clicks / impressions); the interval ({bounds}) is that of "
            "the true MAE, click noise taken out, as the retrain gate computes it."
        ),
        "ctr_mae_latest": (
            f"The champion's observed MAE over the {lookback_days} days before the latest check "
            f"that judged it, and the gate's interval ({bounds}) of its true MAE."
        ),
        "noise_mae": "What a perfect model would show on the same outcomes (click noise alone).",
        "r2": (
            "1 - squared errors / spread of the observed CTR around its mean, over the judged "
            "live predictions; click noise in the observed CTR lowers it."
        ),
        "roas_accuracy": (
            "1 - sum |predicted ROAS - actual ROAS| / sum actual ROAS, over the judged live "
            "predictions with both filled (1 is perfect; it can go below 0)."
        ),
        "n_samples": "Live predictions made in the period whose outcome is known and judged.",
        "roas_samples": "Judged predictions that carry both a predicted and an actual ROAS.",
        "daily": (
            "Per day, the last check that judged it: the champion's observed MAE over the "
            f"{lookback_days} days before, the interval ({bounds}) of its true MAE, and the "
            "noise floor."
        ),
        "by_platform": "The period's figures per platform of the video.",
        "by_model": "The period's figures per model version that served predictions.",
        # Learning.
        "trainings": (
            "Every check that set out to train a challenger: hold-out MAE and R² of the "
            "champion (before) and the challenger (after) on the same videos, and why it ran."
        ),
        "improvement_lower": (
            "Lower bound of the challenger's paired hold-out advantage over the champion (at "
            "the promotion's confidence); a promotion needs it above the margin needed."
        ),
        "promotions": (
            "Each promotion on live outcomes: the serving model's predictions in the "
            f"{lookback_days} days before it against the promoted model's in the "
            f"{lookback_days} days after, as far as their outcomes are known."
        ),
        "weeks": (
            "Per week (Monday to Sunday, UTC, cut to the period): predictions made, judged "
            "outcomes resolved, purchase signals received."
        ),
        # Reliability.
        "checks": "Retrain checks that judged a day of the period.",
        "days_checked": "Days of the period judged by at least one check.",
        "by_trigger": "Checks per trigger and outcome.",
        "retrain_success_rate": (
            "Of the checks that set out to train a challenger, the share that finished "
            "(promoted or rejected on evidence) rather than failed; a run that died before "
            "deciding is an error, not a retrain."
        ),
        "median_training_seconds": "Median wall-clock seconds of a challenger's training.",
        "worst_training_seconds": "Longest training of the period, in seconds.",
        "errors": "Checks that failed, with their reason; the champion was unchanged.",
        "purchase_signals": (
            "Purchase signals received in the period; new ones start a check at the "
            "purchase sensor's next tick."
        ),
        # Ranking value.
        "deciles": (
            "The period's judged predictions in ten equal groups by predicted CTR (10: the "
            "highest); observed CTR = their clicks / impressions, ROAS = mean actual ROAS."
        ),
        "top_decile_ctr_lift": (
            "Observed CTR of the top predicted decile divided by the observed CTR of all "
            "judged predictions: how much more the videos ranked highest really got clicked."
        ),
        "observed_ctr": "Clicks / impressions over every judged outcome of the period.",
        "observed_roas": "Mean actual ROAS over the judged outcomes of the period with one.",
        "top_decile_roas_lift": (
            "Mean actual ROAS of the top predicted decile divided by the mean actual ROAS of "
            "all judged predictions with one."
        ),
    }
