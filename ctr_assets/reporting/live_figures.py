"""The accuracy figures of a group of judged live predictions, each against its target."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctr_assets.ml.gate import judge_window
from ctr_assets.reporting.figures import Figure, ReportSettings, Target, figure
from ctr_assets.reporting.history import LiveOutcomes


@dataclass(frozen=True)
class LiveFigures:
    """One group of judged live predictions: its MAE (with the interval of the true MAE),
    noise floor, R² and ROAS accuracy, each against its target."""

    n_samples: int
    mae: Figure
    noise_mae: Figure
    r2: Figure
    roas_samples: int
    roas_accuracy: Figure


def live_figures(live: LiveOutcomes, settings: ReportSettings, what: str) -> LiveFigures:
    """The figures of `live`; `what` names the group in the words of a missing figure."""
    n = len(live)
    none = f"no judged prediction {what}"
    mae_target = Target(settings.mae_threshold, above=False)
    errors = live.outcomes.abs_error
    mae = lower = upper = noise = r2 = None
    if n:
        mae = float(errors.mean())
    if n >= 2:
        window = judge_window(
            live.outcomes, settings.mae_threshold, settings.confidence, settings.dispersion
        )
        lower, upper, noise = window.lower_bound, window.upper_bound, window.noise_mae
        observed = live.outcomes.observed
        spread = float(((observed - observed.mean()) ** 2).sum())
        if observed.min() < observed.max() and spread > 0:
            r2 = 1 - float((errors**2).sum()) / spread
    both = ~np.isnan(live.predicted_roas) & ~np.isnan(live.actual_roas)
    roas_sum = float(live.actual_roas[both].sum())
    roas_error = float(np.abs(live.predicted_roas[both] - live.actual_roas[both]).sum())
    no_roas = (
        f"no judged prediction {what} carries both a predicted and an actual ROAS"
        if not both.any()
        else f"the actual ROAS {what} sums to 0: there is no return to compare with"
    )
    no_r2 = none if n == 0 else f"{what}: R² needs observed CTRs that vary, over 2 rows or more"
    return LiveFigures(
        n_samples=n,
        mae=figure(mae, none, mae_target, lower, upper),
        noise_mae=figure(noise, none if n == 0 else f"{what}: the noise floor needs 2 rows"),
        r2=figure(r2, no_r2, Target(settings.r2_target, above=True)),
        roas_samples=int(both.sum()),
        roas_accuracy=figure(
            1 - roas_error / roas_sum if roas_sum > 0 else None,
            no_roas,
            Target(settings.roas_accuracy_target, above=True, percent=True),
        ),
    )
