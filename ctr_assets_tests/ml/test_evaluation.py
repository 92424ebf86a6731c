from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from ctr_assets.ml.evaluation import predict_ctr, score_on_holdout
from ctr_assets.ml.model_inputs import feature_matrix
from ctr_assets.ml.split import holdout_mask
from ctr_assets.ml.training import TrainedModel, TrainingParams, train_ctr_model
from ctr_assets_tests.ml.synthetic import synthetic_training_frame


def _raw_predictions(booster: xgb.Booster, frame: pd.DataFrame) -> np.ndarray:
    return booster.predict(xgb.DMatrix(feature_matrix(frame), enable_categorical=True))


@pytest.mark.parametrize("seed", [0, 5])
def test_a_rate_the_model_predicts_is_passed_through_unchanged(
    trained_model: TrainedModel, seed: int
) -> None:
    frame = synthetic_training_frame(rows=1000, seed=seed)
    raw = _raw_predictions(trained_model.booster, frame)
    assert ((raw > 0.0) & (raw < 1.0)).all()  # a logistic model: rates already

    predicted = predict_ctr(trained_model.booster, frame)

    assert predicted.shape == (len(frame),)
    assert predicted.dtype == np.float64
    np.testing.assert_array_equal(predicted, raw.astype(np.float64))


@pytest.mark.parametrize(("intercept", "clipped_to"), [(-0.5, 0.0), (1.5, 1.0)])
def test_a_prediction_outside_0_1_is_clipped_to_the_nearest_rate(
    training_frame: pd.DataFrame, intercept: float, clipped_to: float
) -> None:
    # A squared-error objective (a raw XGBoost parameter an operator may set) is not held
    # to [0, 1]; here its intercept puts every raw prediction outside on purpose.
    squared_error = TrainingParams(
        num_boost_round=2,
        learning_rate=1e-6,
        extra={"objective": "reg:squarederror", "base_score": intercept},
    )
    booster = train_ctr_model(training_frame, squared_error).booster
    frame = training_frame.head(200)
    raw = _raw_predictions(booster, frame)
    assert ((raw < 0.0) | (raw > 1.0)).all(), "the premise: raw predictions are not rates"

    predicted = predict_ctr(booster, frame)

    np.testing.assert_array_equal(predicted, np.full(len(frame), clipped_to))


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
