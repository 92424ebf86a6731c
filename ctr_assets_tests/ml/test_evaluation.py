from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctr_assets.ml.evaluation import predict_ctr, score_on_holdout
from ctr_assets.ml.split import holdout_mask
from ctr_assets.ml.training import TrainedModel
from ctr_assets_tests.ml.synthetic import synthetic_training_frame


@pytest.mark.parametrize("seed", [0, 5])
def test_predictions_are_rates(trained_model: TrainedModel, seed: int) -> None:
    frame = synthetic_training_frame(rows=1000, seed=seed)
    predicted = predict_ctr(trained_model.booster, frame)
    assert predicted.shape == (len(frame),)
    assert ((predicted >= 0.0) & (predicted <= 1.0)).all()
    assert np.isfinite(predicted).all()


def test_holdout_score_uses_only_holdout_rows(
    trained_model: TrainedModel, training_frame: pd.DataFrame
) -> None:
    held_out = holdout_mask(training_frame["video_id"])
    score = score_on_holdout(trained_model.booster, training_frame)
    assert score.rows == int(held_out.sum())
    assert score.mean_actual == pytest.approx(training_frame.loc[held_out, "ctr"].mean())
    predicted = predict_ctr(trained_model.booster, training_frame.loc[held_out])
    assert score.mean_predicted == pytest.approx(predicted.mean())
    assert score.mae == pytest.approx(
        np.abs(predicted - training_frame.loc[held_out, "ctr"]).mean()
    )


def test_scoring_without_holdout_rows_is_refused(
    trained_model: TrainedModel, training_frame: pd.DataFrame
) -> None:
    no_holdout = training_frame.loc[~holdout_mask(training_frame["video_id"])]
    with pytest.raises(ValueError, match="0 hold-out rows"):
        score_on_holdout(trained_model.booster, no_holdout)


def test_a_frame_missing_a_feature_is_refused(
    trained_model: TrainedModel, training_frame: pd.DataFrame
) -> None:
    with pytest.raises(ValueError, match="hook_strength"):
        predict_ctr(trained_model.booster, training_frame.drop(columns=["hook_strength"]))
