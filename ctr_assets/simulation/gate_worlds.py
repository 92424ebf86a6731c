"""Seeded worlds of resolved predictions for measuring the retrain gate's error rates.

Each window is a set of days of resolved predictions whose true CTR is known: a model with
a chosen true MAE (errors of equal size, or of normal spread), outcomes drawn as binomial
clicks over a chosen range of impressions. `gate_alarm_rate` runs the gate (and the CUSUM)
over many such windows and returns how often it would retrain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ctr_assets.ml.gate import Outcomes, assess

ErrorShape = Literal["equal", "normal"]


@dataclass(frozen=True)
class GateWorld:
    """One kind of window: rows per day, days, impressions and CTR ranges, the model."""

    true_mae: float
    shape: ErrorShape = "normal"
    rows_per_day: int = 150
    days: int = 7
    impressions: tuple[int, int] = (20, 300)
    # log: log-uniform over the range (most new ads have few impressions); or uniform
    impressions_scale: Literal["log", "uniform"] = "log"
    ctr: tuple[float, float] = (0.03, 0.10)
    dispersion: float = 1.0  # > 1: beta-binomial clicks, over-dispersed by this factor


def predictions_with_mae(
    rng: np.random.Generator, true_ctr: np.ndarray, mae: float, shape: ErrorShape
) -> np.ndarray:
    """Predictions in [0, 1] whose mean absolute error against `true_ctr` is exactly `mae`."""
    if mae == 0:
        return true_ctr.copy()
    if shape == "equal":
        sign = rng.choice([-1.0, 1.0], len(true_ctr))
        predicted = true_ctr + sign * mae
        return np.where(predicted < 0, true_ctr + mae, predicted)
    direction = rng.standard_normal(len(true_ctr))
    low, high = 0.0, 1.0
    for _ in range(60):  # the spread whose clipped errors average exactly `mae`
        scale = (low + high) / 2
        error = np.abs(np.clip(true_ctr + scale * direction, 0, 1) - true_ctr).mean()
        low, high = (scale, high) if error < mae else (low, scale)
    return np.clip(true_ctr + scale * direction, 0, 1)


def draw_window(rng: np.random.Generator, world: GateWorld, first_day: int = 0) -> Outcomes:
    rows = world.rows_per_day * world.days
    true_ctr = rng.uniform(*world.ctr, rows)
    low, high = world.impressions
    impressions = (
        np.round(np.exp(rng.uniform(np.log(low), np.log(high), rows))).astype(np.int64)
        if world.impressions_scale == "log"
        else rng.integers(low, high + 1, rows)
    )
    predicted = predictions_with_mae(rng, true_ctr, world.true_mae, world.shape)
    if world.dispersion > 1:
        # Beta-binomial with Var = phi * n theta (1 - theta): rho = (phi - 1) / (n - 1).
        rho = (world.dispersion - 1) / np.maximum(impressions - 1, 1)
        concentration = np.maximum(1 / rho - 1, 1e-6)
        ctr = rng.beta(true_ctr * concentration, (1 - true_ctr) * concentration)
        clicks = rng.binomial(impressions, ctr)
    else:
        clicks = rng.binomial(impressions, true_ctr)
    day = first_day + np.repeat(np.arange(world.days), world.rows_per_day)
    return Outcomes(
        predicted,
        clicks / impressions,
        impressions.astype(np.float64),
        day.astype(np.float64),
        day.astype(np.float64) * 86_400,
    )


@dataclass(frozen=True)
class AlarmRate:
    windows: int
    gate: float  # share of windows where the window's bound alone says retrain
    cusum: float  # ... where the CUSUM alone alarms
    either: float  # ... where the noise-aware gate (bound or CUSUM) says retrain
    naive: float  # ... where the point rule (observed MAE > threshold) says retrain
    mean_observed_mae: float


def gate_alarm_rate(
    world: GateWorld,
    windows: int,
    seed: int,
    *,
    threshold: float = 0.02,
    confidence: float = 0.99,
    cusum_k: float = 1.0,
    cusum_h: float = 2.5,
) -> AlarmRate:
    """Runs the gate over `windows` independent windows of `world` (seeded)."""
    rng = np.random.default_rng(seed)
    gate = cusum = either = naive = 0
    observed = []
    for _ in range(windows):
        window = draw_window(rng, world)
        evidence = assess(
            window,
            window,
            threshold,
            confidence,
            cusum_k=cusum_k,
            cusum_h=cusum_h,
            with_bounds=False,
        )
        gate += evidence.breach
        cusum += evidence.cusum_alarm
        either += evidence.breach or evidence.cusum_alarm
        naive += evidence.naive_breach
        observed.append(evidence.mae)
    return AlarmRate(
        windows,
        gate / windows,
        cusum / windows,
        either / windows,
        naive / windows,
        float(np.mean(observed)),
    )
