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


@dataclass(frozen=True)
class Holdout:
    """The hold-out rows of one frame, taken once: only the model's features and what the
    comparison reads, not a copy of the frame. Champion and challenger both predict these
    same features."""

    positions: np.ndarray  # row positions in the frame
    features: pd.DataFrame
    actual: np.ndarray
    weights: np.ndarray | None

    def __len__(self) -> int:
        return len(self.positions)

    def column(self, frame: pd.DataFrame, name: str) -> np.ndarray:
        """The hold-out rows' values of one more column of `frame`."""
        return frame[name].take(self.positions).to_numpy()


def take_holdout(
    frame: pd.DataFrame, weights: np.ndarray | None = None, mask: np.ndarray | None = None
) -> Holdout:
    """The hold-out of `frame` (`mask`, else the keyed hash of its ids), at least 2 rows."""
    mask = holdout_mask(frame["video_id"]) if mask is None else mask
    positions = np.flatnonzero(mask)
    if len(positions) < 2:
        raise ValueError(
            f"the frame has {len(positions)} hold-out rows out of {len(frame)}; at least 2 are "
            "needed to score a model, so load more videos"
        )
    features = feature_matrix(frame).take(positions)
    actual = target(frame)[positions]
    return Holdout(positions, features, actual, None if weights is None else weights[positions])


def predict_ctr(booster: xgb.Booster, frame: pd.DataFrame) -> np.ndarray:
    """Predicted CTR per row, within [0, 1] whatever objective the booster was trained with.

    Predicted in place from the frame's columns: no DMatrix copy of the rows."""
    predicted = booster.inplace_predict(feature_matrix(frame))
    return np.clip(predicted, 0.0, 1.0).astype(np.float64)


def score_on_holdout(
    booster: xgb.Booster, frame: pd.DataFrame, weights: np.ndarray | None = None
) -> HoldoutScore:
    """Scores on the hold-out rows only, so champion and challenger meet on equal terms.

    With `weights` (one per frame row) the MAE and R² are weighted the same way training was.
    """
    holdout = take_holdout(frame, weights)
    return score_predictions(
        holdout.actual, predict_ctr(booster, holdout.features), holdout.weights
    )


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
