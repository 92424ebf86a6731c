from __future__ import annotations

import pytest

from ctr_assets.ml.decision import (
    AccuracySnapshot,
    RetrainPolicy,
    challenger_wins,
    decide_retrain,
)
from ctr_assets.ml.evaluation import HoldoutScore

POLICY = RetrainPolicy(mae_threshold=0.02, min_samples=50)


@pytest.mark.parametrize(
    ("accuracy", "has_champion", "action", "reason"),
    [
        pytest.param(
            AccuracySnapshot(mae=None, n_samples=0, r2=None),
            False,
            "retrain",
            "no champion yet",
            id="no-champion",
        ),
        pytest.param(
            AccuracySnapshot(mae=0.5, n_samples=12, r2=None),
            True,
            "insufficient_data",
            "only 12 resolved predictions of the champion in the window; "
            "at least 50 are needed to judge its accuracy",
            id="too-few-samples",
        ),
        pytest.param(
            AccuracySnapshot(mae=None, n_samples=49, r2=None),
            True,
            "insufficient_data",
            "only 49 resolved predictions of the champion in the window; "
            "at least 50 are needed to judge its accuracy",
            id="one-short-of-min-samples",
        ),
        pytest.param(
            AccuracySnapshot(mae=0.0312, n_samples=340, r2=0.1),
            True,
            "retrain",
            "MAE 0.0312 exceeds threshold 0.0200 over 340 predictions",
            id="mae-above-threshold",
        ),
        pytest.param(
            AccuracySnapshot(mae=0.0201, n_samples=50, r2=0.4),
            True,
            "retrain",
            "MAE 0.0201 exceeds threshold 0.0200 over 50 predictions",
            id="exactly-min-samples-is-enough",
        ),
        pytest.param(
            AccuracySnapshot(mae=0.02, n_samples=340, r2=0.4),
            True,
            "no_retrain_needed",
            "MAE 0.0200 is within threshold 0.0200 over 340 predictions",
            id="mae-exactly-at-threshold-is-no-breach",
        ),
        pytest.param(
            AccuracySnapshot(mae=0.011, n_samples=1000, r2=0.8),
            True,
            "no_retrain_needed",
            "MAE 0.0110 is within threshold 0.0200 over 1000 predictions",
            id="mae-below-threshold",
        ),
    ],
)
def test_decide_retrain(
    accuracy: AccuracySnapshot, has_champion: bool, action: str, reason: str
) -> None:
    decision = decide_retrain(accuracy, POLICY, has_champion=has_champion)
    assert (decision.action, decision.reason) == (action, reason)


def test_enough_samples_without_an_mae_is_refused() -> None:
    with pytest.raises(ValueError, match="no MAE"):
        decide_retrain(AccuracySnapshot(mae=None, n_samples=60, r2=None), POLICY, True)


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"mae_threshold": 0.0}, "mae_threshold"), ({"min_samples": 0}, "min_samples")],
)
def test_nonsense_policy_is_refused(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetrainPolicy(**settings)  # type: ignore[arg-type]


def _score(mae: float, rows: int = 500) -> HoldoutScore:
    return HoldoutScore(mae=mae, r2=0.5, rows=rows, mean_predicted=0.04, mean_actual=0.04)


@pytest.mark.parametrize(
    ("champion", "challenger", "wins", "reason"),
    [
        pytest.param(None, _score(0.03), True, "no champion yet", id="no-champion"),
        pytest.param(
            _score(0.0250),
            _score(0.0213),
            True,
            "challenger hold-out MAE 0.0213 vs champion 0.0250 on 500 videos: "
            "the challenger is better",
            id="challenger-better",
        ),
        pytest.param(
            _score(0.0213),
            _score(0.0250),
            False,
            "challenger hold-out MAE 0.0250 vs champion 0.0213 on 500 videos: "
            "the challenger is not better, the champion stays",
            id="challenger-worse",
        ),
        pytest.param(
            _score(0.0213),
            _score(0.0213),
            False,
            "challenger hold-out MAE 0.0213 vs champion 0.0213 on 500 videos: "
            "the challenger is not better, the champion stays",
            id="tie-keeps-champion",
        ),
    ],
)
def test_challenger_wins(
    champion: HoldoutScore | None, challenger: HoldoutScore, wins: bool, reason: str
) -> None:
    assert challenger_wins(champion, challenger) == (wins, reason)


def test_scores_from_different_holdouts_are_refused() -> None:
    with pytest.raises(ValueError, match="same training frame"):
        challenger_wins(_score(0.02, rows=500), _score(0.01, rows=499))
