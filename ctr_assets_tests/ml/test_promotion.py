"""Promotion on evidence: a reseeded copy of the champion is no upgrade, a model that has
learnt a drift is, and a challenger clearly worse on one platform is turned away."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctr_assets.ml.evaluation import predict_ctr
from ctr_assets.ml.model_inputs import target
from ctr_assets.ml.promotion import PromotionPolicy, judge_promotion, paired_difference
from ctr_assets.ml.split import holdout_mask
from ctr_assets.ml.training import TrainedModel, TrainingParams, train_ctr_model
from ctr_assets_tests.ml.synthetic import synthetic_training_frame

POLICY = PromotionPolicy()
SEEDS = range(1, 21)


def _judge(frame: pd.DataFrame, champion: TrainedModel, challenger: TrainedModel):
    held_out = frame.loc[holdout_mask(frame["video_id"])]
    return judge_promotion(
        target(held_out),
        predict_ctr(champion.booster, held_out),
        predict_ctr(challenger.booster, held_out),
        None,
        held_out["platform"].astype(str).to_numpy(),
        POLICY,
    )


def test_the_champion_retrained_with_another_seed_is_rejected(
    training_frame: pd.DataFrame, trained_model: TrainedModel
) -> None:
    verdicts = [
        _judge(
            training_frame, trained_model, train_ctr_model(training_frame, TrainingParams(seed=s))
        )
        for s in SEEDS
    ]
    promoted = [v for v in verdicts if v.promote]
    assert len(promoted) <= 0.05 * len(verdicts), [v.reason for v in promoted]
    assert all("within noise" in v.reason for v in verdicts if not v.promote)
    # the two models do differ: the comparison was not vacuous
    assert any(v.improvement.mean != 0 for v in verdicts)


def _drifted(frame: pd.DataFrame, platform: str, factor: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    shifted = frame.copy()
    on = (shifted["platform"] == platform).to_numpy()
    true_ctr = np.clip(frame["ctr"].to_numpy() * np.where(on, factor, 1.0), 0, 1)
    shifted["clicks"] = rng.binomial(frame["impressions"].to_numpy(), true_ctr)
    shifted["ctr"] = shifted["clicks"] / shifted["impressions"]
    return shifted


def test_after_a_real_drift_the_challenger_is_promoted(
    training_frame: pd.DataFrame, trained_model: TrainedModel
) -> None:
    drifted = _drifted(training_frame, "tiktok", 2.0, seed=1)
    challenger = train_ctr_model(drifted, TrainingParams())
    verdict = _judge(drifted, trained_model, challenger)
    assert verdict.promote, verdict.reason
    assert verdict.improvement.lower > POLICY.min_improvement * verdict.champion_mae
    assert "better beyond noise" in verdict.reason


def test_better_overall_but_clearly_worse_on_one_platform_is_rejected_naming_it() -> None:
    rng = np.random.default_rng(2)
    rows = 3000
    platforms = rng.choice(np.array(["tiktok", "instagram", "youtube", "facebook"]), rows)
    actual = rng.uniform(0.02, 0.08, rows)
    champion = actual + rng.normal(0, 0.012, rows)
    challenger = actual + rng.normal(0, 0.004, rows)  # far better everywhere ...
    youtube = platforms == "youtube"
    challenger[youtube] = actual[youtube] + 0.02 + rng.normal(0, 0.004, youtube.sum())  # ...

    verdict = judge_promotion(actual, champion, challenger, None, platforms, POLICY)

    assert verdict.improvement.lower > 0  # better overall, beyond noise
    assert not verdict.promote
    assert "clearly worse on youtube" in verdict.reason
    regressed = [s.name for s in verdict.slices if s.regressed]
    assert regressed == ["youtube"]


def test_a_worse_roas_error_rejects_where_roas_is_predicted() -> None:
    rng = np.random.default_rng(3)
    rows = 2000
    actual = rng.uniform(0.02, 0.08, rows)
    champion = actual + rng.normal(0, 0.010, rows)
    challenger = actual + rng.normal(0, 0.003, rows)  # far better on most videos ...
    value = np.where(np.arange(rows) % 10 == 0, 60.0, 1.0)  # a tenth of them earn a lot
    rich = value > 10
    challenger[rich] = actual[rich] + rng.normal(0, 0.03, rich.sum())  # ... worse where it pays
    platforms = np.full(rows, "tiktok")

    without = judge_promotion(actual, champion, challenger, None, platforms, POLICY)
    with_roas = judge_promotion(actual, champion, challenger, None, platforms, POLICY, value)

    assert without.promote
    assert not with_roas.promote
    assert with_roas.roas is not None
    assert with_roas.roas.regressed
    assert "clearly worse on ROAS" in with_roas.reason


def test_a_slice_too_small_is_not_judged() -> None:
    rng = np.random.default_rng(4)
    actual = rng.uniform(0.02, 0.08, 500)
    platforms = np.array(["tiktok"] * 490 + ["snapchat"] * 10)
    verdict = judge_promotion(actual, actual + 0.01, actual + 0.001, None, platforms, POLICY)
    assert [s.name for s in verdict.slices] == ["tiktok"]


def test_the_paired_interval_is_the_weighted_mean_and_its_sandwich_error() -> None:
    difference = np.array([0.01, 0.03, -0.01, 0.02])
    weights = np.array([1.0, 2.0, 1.0, 0.0])
    result = paired_difference(difference, weights, 0.975)
    mean = (0.01 + 0.06 - 0.01) / 4
    se = np.sqrt(1 * (0.01 - mean) ** 2 + 4 * (0.03 - mean) ** 2 + (-0.01 - mean) ** 2) / 4
    assert result.mean == pytest.approx(mean)
    assert result.lower == pytest.approx(mean - 1.959964 * se, rel=1e-5)
    assert result.upper == pytest.approx(mean + 1.959964 * se, rel=1e-5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"confidence": 0.4}, "confidence"),
        ({"min_improvement": -0.1}, "min_improvement"),
        ({"slice_tolerance": float("nan")}, "slice_tolerance"),
        ({"slice_min_rows": 1}, "slice_min_rows"),
    ],
)
def test_nonsense_promotion_policy_is_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PromotionPolicy(**settings)


def test_a_noisy_low_impression_world_does_not_promote_a_reseeded_copy() -> None:
    frame = synthetic_training_frame(rows=3000, seed=7)
    rng = np.random.default_rng(7)
    frame["impressions"] = rng.integers(100, 400, len(frame))
    true = np.clip(frame["ctr"].to_numpy(), 0, 1)
    frame["clicks"] = rng.binomial(frame["impressions"].to_numpy(), true)
    frame["ctr"] = frame["clicks"] / frame["impressions"]
    champion = train_ctr_model(frame, TrainingParams(seed=100))
    verdicts = [
        _judge(frame, champion, train_ctr_model(frame, TrainingParams(seed=s))) for s in range(5)
    ]
    assert not any(v.promote for v in verdicts), [v.reason for v in verdicts]
