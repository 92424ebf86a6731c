"""How good a model is: its CTR predictions, scored on the shared hold-out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import mean_absolute_error, r2_score

from ctr_assets.ml.model_inputs import feature_matrix, target
from ctr_assets.ml.split import holdout_mask


@dataclass(frozen=True)
class HoldoutScore:
    """A model's accuracy on the hold-out videos of one training frame."""

    mae: float
    r2: float
    rows: int
    mean_predicted: float
    mean_actual: float


def predict_ctr(booster: xgb.Booster, frame: pd.DataFrame) -> np.ndarray:
    """Predicted CTR per row, within [0, 1] whatever objective the booster was trained with."""
    matrix = xgb.DMatrix(feature_matrix(frame), enable_categorical=True)
    return np.clip(booster.predict(matrix), 0.0, 1.0).astype(np.float64)


def score_on_holdout(
    booster: xgb.Booster, frame: pd.DataFrame, weights: np.ndarray | None = None
) -> HoldoutScore:
    """Scores on the hold-out rows only, so champion and challenger meet on equal terms.

    With `weights` (one per frame row) the MAE and R² are weighted the same way training was.
    """
    mask = holdout_mask(frame["video_id"])
    held_out = frame.loc[mask]
    weight = None if weights is None else weights[mask]
    if len(held_out) < 2:
        raise ValueError(
            f"the frame has {len(held_out)} hold-out rows out of {len(frame)}; at least 2 are "
            "needed to score a model, so load more videos"
        )
    return score_predictions(target(held_out), predict_ctr(booster, held_out), weight)


def score_predictions(
    actual: np.ndarray, predicted: np.ndarray, weights: np.ndarray | None = None
) -> HoldoutScore:
    """MAE and R² of `predicted` against `actual`, weighted as training was."""
    return HoldoutScore(
        mae=float(mean_absolute_error(actual, predicted, sample_weight=weights)),
        # Not forced finite: a constant target gives NaN or -inf, never a made-up 0.0.
        r2=float(r2_score(actual, predicted, sample_weight=weights, force_finite=False)),
        rows=len(actual),
        mean_predicted=float(np.average(predicted, weights=weights)),
        mean_actual=float(np.average(actual, weights=weights)),
    )
