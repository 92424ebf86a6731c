"""The noise-aware retrain gate's error rates, measured by seeded simulation over many
windows (the rates themselves are printed by `python -m bench.gate_rates`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from ctr_assets.ml.decision import RetrainPolicy, decide_retrain
from ctr_assets.ml.gate import (
    Outcomes,
    assess,
    boundary_moments,
    cusum,
    estimate_dispersion,
)
from ctr_assets.simulation.gate_worlds import GateWorld, draw_window, gate_alarm_rate

WINDOWS = 200
POLICY = RetrainPolicy()
LOW_IMPRESSIONS = (20, 300)  # outcomes resolved after few impressions


def _rate(world: GateWorld, seed: int = 11):
    return gate_alarm_rate(
        world,
        WINDOWS,
        seed,
        threshold=POLICY.mae_threshold,
        confidence=POLICY.confidence,
        cusum_k=POLICY.cusum_k,
        cusum_h=POLICY.cusum_h,
    )


def test_a_perfect_model_on_noisy_outcomes_is_not_retrained() -> None:
    rate = _rate(GateWorld(true_mae=0.0, impressions=LOW_IMPRESSIONS))
    assert rate.mean_observed_mae > 0.02  # label noise alone is over the threshold ...
    assert rate.naive >= 0.99  # ... so the point rule retrains on it
    assert rate.either <= 0.01


@pytest.mark.parametrize("shape", ["normal", "equal"])
def test_a_model_exactly_at_the_threshold_rarely_alarms(shape: str) -> None:
    rate = _rate(GateWorld(true_mae=0.02, shape=shape, impressions=LOW_IMPRESSIONS))  # type: ignore[arg-type]
    assert rate.naive == 1.0  # the point rule always retrains it
    assert rate.either <= 0.05


def test_a_true_error_of_0035_over_300_noisy_outcomes_is_caught() -> None:
    world = GateWorld(
        true_mae=0.035, shape="equal", rows_per_day=43, impressions=LOW_IMPRESSIONS
    )  # 301 rows
    assert _rate(world).either >= 0.99


def test_a_true_error_of_0025_over_2000_outcomes_at_1000_impressions_is_caught() -> None:
    world = GateWorld(true_mae=0.025, shape="equal", rows_per_day=286, impressions=(1000, 3000))
    assert _rate(world).either >= 0.95


def test_49_mature_rows_never_retrain_even_far_over_the_threshold() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        window = draw_window(rng, GateWorld(true_mae=0.2, rows_per_day=7, days=7))
        assert len(window) == 49
        evidence = assess(window, window, 0.02, POLICY.confidence)
        assert evidence.breach  # the evidence is there ...
        assert decide_retrain(evidence, POLICY, True).action == "insufficient_data"  # ... too thin


def test_row_order_and_repeated_runs_give_the_same_answer() -> None:
    rng = np.random.default_rng(5)
    window = draw_window(rng, GateWorld(true_mae=0.018, impressions=LOW_IMPRESSIONS))
    order = rng.permutation(len(window))
    shuffled = Outcomes(window.predicted[order], window.observed[order], window.impressions[order])
    first = assess(window, window, 0.02, 0.99)
    again = assess(window, window, 0.02, 0.99)
    other = assess(shuffled, shuffled, 0.02, 0.99)
    assert first == again
    for name in ("mae", "noise_mae", "mae_lower_bound", "mae_upper_bound", "excess"):
        assert getattr(other, name) == pytest.approx(getattr(first, name), rel=1e-9)
    assert other.breach == first.breach


@pytest.mark.parametrize(
    ("p", "n"), [(0.03, 20), (0.05, 37), (0.2, 5), (0.001, 300), (0.5, 60), (0.07, 2)]
)
@pytest.mark.parametrize("t", [0.0, 0.01, 0.03])
def test_the_boundary_is_the_exact_binomial_expectation(p: float, n: int, t: float) -> None:
    """b(t) and the variance against a brute-force sum over clicks and a fine grid of
    true CTRs (errors of normal spread, kept in [0, 1], mean absolute value t)."""
    one = Outcomes(np.array([p]), np.array([0.0]), np.array([float(n)]))
    mean, variance = boundary_moments(one, t)
    if t == 0:
        thetas, weights = np.array([p]), np.array([1.0])
    else:
        grid = np.linspace(-8, 8, 4001)
        density = stats.norm.pdf(grid)
        low, high = 0.0, 1.0  # the spread whose clipped mean error is t
        for _ in range(80):
            scale = (low + high) / 2
            mae = np.sum(density * np.abs(p - np.clip(p - scale * grid, 0, 1))) / density.sum()
            low, high = (scale, high) if mae < t else (low, scale)
        thetas, weights = np.clip(p - scale * grid, 0, 1), density / density.sum()
    clicks = np.arange(n + 1)
    pmf = stats.binom.pmf(clicks[None, :], n, thetas[:, None])
    error = np.abs(p - clicks / n)[None, :]
    expected = float(np.sum(weights[:, None] * pmf * error))
    second = float(np.sum(weights[:, None] * pmf * error**2))
    assert mean[0] == pytest.approx(expected, abs=2e-4)
    assert variance[0] == pytest.approx(second - expected**2, rel=0.05, abs=1e-6)


def test_over_dispersion_is_measured_and_widens_the_noise() -> None:
    rng = np.random.default_rng(8)
    over = draw_window(rng, GateWorld(true_mae=0.0, dispersion=2.0, days=28))
    plain = draw_window(rng, GateWorld(true_mae=0.0, days=28))
    assert 1.6 <= estimate_dispersion(over).phi <= 2.4
    assert estimate_dispersion(plain).phi <= 1.2
    assert assess(over, over, 0.02, 0.99).noise_mae > assess(plain, plain, 0.02, 0.99).noise_mae


def test_an_error_that_grows_with_few_impressions_does_not_pass_for_dispersion() -> None:
    """Outcomes with many impressions: the label noise is tiny next to the model's errors,
    so dispersion is not estimated (a drift that hits low-impression videos would
    otherwise hide as noise)."""
    rng = np.random.default_rng(9)
    window = draw_window(rng, GateWorld(true_mae=0.01, impressions=(2000, 20000)))
    worse = window.impressions < 6000
    predicted = np.where(worse, window.predicted + 0.05, window.predicted)
    drifted = replace(window, predicted=predicted)
    dispersion = estimate_dispersion(drifted)
    assert dispersion.phi == 1.0
    assert "too little" in dispersion.note


def test_the_cusum_catches_a_jump_within_two_days_and_resets_with_a_new_model() -> None:
    rng = np.random.default_rng(4)
    calm = draw_window(rng, GateWorld(true_mae=0.005, rows_per_day=150, days=10))
    jump = draw_window(rng, GateWorld(true_mae=0.03, rows_per_day=150, days=2), first_day=10)

    def joined(*parts: Outcomes) -> Outcomes:
        return Outcomes(
            *(
                np.concatenate([getattr(p, name) for p in parts])
                for name in ("predicted", "observed", "impressions", "batch", "predicted_at")
            )
        )

    before = cusum(calm, 0.02, POLICY.cusum_k, POLICY.cusum_h)
    after = cusum(joined(calm, jump), 0.02, POLICY.cusum_k, POLICY.cusum_h)
    assert not before.alarm
    assert before.statistic == 0.0
    assert after.alarm
    assert after.batches == 12
    # a new champion has only its own outcomes: the CUSUM starts again from nothing
    assert not cusum(calm, 0.02, POLICY.cusum_k, POLICY.cusum_h).alarm


def test_dispersion_is_estimated_over_many_windows_without_failing() -> None:
    """Seeded windows where the weighted regression once met a singular system (a fitted
    mean at or below zero took all the weight)."""
    rng = np.random.default_rng(2036)  # bench.gate_rates' seed for this world
    for _ in range(1000):
        window = draw_window(rng, GateWorld(true_mae=0.0, dispersion=2.0))
        assert 1.0 <= estimate_dispersion(window).phi <= 4.0
