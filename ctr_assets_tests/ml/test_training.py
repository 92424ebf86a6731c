from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctr_assets.data.features import FEATURES
from ctr_assets.ml.evaluation import score_on_holdout
from ctr_assets.ml.model_files import save_model
from ctr_assets.ml.split import holdout_mask
from ctr_assets.ml.training import (
    MIN_TRAINING_ROWS,
    TrainedModel,
    TrainingError,
    TrainingParams,
    train_ctr_model,
    usable_training_rows,
)
from ctr_assets_tests.ml.synthetic import synthetic_training_frame


def test_model_beats_predicting_the_mean(
    trained_model: TrainedModel, training_frame: pd.DataFrame
) -> None:
    held_out = training_frame.loc[holdout_mask(training_frame["video_id"])]
    learnt_from = training_frame.loc[~holdout_mask(training_frame["video_id"])]
    mean_baseline_mae = (held_out["ctr"] - learnt_from["ctr"].mean()).abs().mean()
    score = score_on_holdout(trained_model.booster, training_frame)
    assert score.mae < 0.5 * mean_baseline_mae
    assert score.r2 > 0.5


def test_trains_only_outside_the_holdout(
    trained_model: TrainedModel, training_frame: pd.DataFrame
) -> None:
    held_out = int(holdout_mask(training_frame["video_id"]).sum())
    assert trained_model.training_rows + trained_model.validation_rows + held_out == len(
        training_frame
    )
    assert trained_model.validation_rows > 0
    assert usable_training_rows(training_frame) == len(training_frame) - held_out


def test_model_reads_exactly_the_feature_contract(trained_model: TrainedModel) -> None:
    assert trained_model.booster.feature_names == list(FEATURES)


def test_booster_is_cut_at_the_best_iteration() -> None:
    # A high learning rate overfits quickly, so early stopping certainly triggers.
    params = TrainingParams(learning_rate=0.8, num_boost_round=300, early_stopping_rounds=5)
    model = train_ctr_model(synthetic_training_frame(rows=2000, seed=1), params)
    assert model.best_iteration < params.num_boost_round - 1
    assert model.booster.num_boosted_rounds() == model.best_iteration + 1


def test_same_data_and_seed_give_byte_identical_files(
    training_frame: pd.DataFrame, tmp_path: Path
) -> None:
    first = save_model(train_ctr_model(training_frame, TrainingParams()).booster, tmp_path, "a")
    second = save_model(train_ctr_model(training_frame, TrainingParams()).booster, tmp_path, "b")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256


def test_a_different_seed_gives_a_different_model(
    training_frame: pd.DataFrame, tmp_path: Path
) -> None:
    first = save_model(train_ctr_model(training_frame, TrainingParams()).booster, tmp_path, "a")
    other = train_ctr_model(training_frame, TrainingParams(seed=7)).booster
    assert save_model(other, tmp_path, "b").sha256 != first.sha256


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"max_depth": -3}, "max_depth"),
        ({"objective": "nonsense"}, "nonsense"),
        ({"subsample": 2.0}, "subsample"),
        ({"eval_metric": "not_a_metric"}, "not_a_metric"),
        ({"max_dpeth": 4}, "max_dpeth"),  # misspelt: XGBoost alone would only warn
    ],
)
def test_invalid_parameters_fail_naming_the_parameter(
    extra: dict[str, object], named: str, training_frame: pd.DataFrame
) -> None:
    with pytest.raises(TrainingError, match=named):
        train_ctr_model(training_frame, TrainingParams(extra=extra, num_boost_round=3))


def test_extra_parameters_override_the_named_ones() -> None:
    params = TrainingParams(max_depth=6, extra={"max_depth": 3, "gamma": 0.1})
    assert params.xgb_params()["max_depth"] == 3
    assert params.xgb_params()["gamma"] == 0.1
    assert params.xgb_params()["objective"] == "reg:logistic"


def test_too_small_a_frame_to_split_is_refused() -> None:
    with pytest.raises(ValueError, match="load more videos"):
        train_ctr_model(synthetic_training_frame(rows=2, seed=0), TrainingParams())


def test_usable_rows_of_an_empty_frame_is_zero() -> None:
    empty = synthetic_training_frame(rows=10, seed=0).iloc[0:0]
    assert usable_training_rows(empty) == 0
    assert usable_training_rows(empty) < MIN_TRAINING_ROWS


def test_a_frame_with_drifted_categories_is_refused(training_frame: pd.DataFrame) -> None:
    drifted = training_frame.copy()
    drifted["platform"] = drifted["platform"].cat.add_categories(["myspace"])
    with pytest.raises(ValueError, match="'platform' must be a pandas Categorical"):
        train_ctr_model(drifted, TrainingParams())


def test_a_target_outside_zero_one_is_refused(training_frame: pd.DataFrame) -> None:
    broken = training_frame.copy()
    broken.loc[broken.index[:3], "ctr"] = [1.5, np.nan, -0.1]
    with pytest.raises(ValueError, match="3 rows have a 'ctr'"):
        train_ctr_model(broken, replace(TrainingParams(), num_boost_round=3))
