"""Training the CTR model: gradient-boosted trees on the videos outside the hold-out."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from ctr_assets.faults import pause_point
from ctr_assets.memory import release_free_memory
from ctr_assets.ml.model_inputs import feature_matrix, target
from ctr_assets.ml.split import TrainingSplit, holdout_mask, training_split

# Below this many rows to learn from, a fit says more about noise than about videos.
MIN_TRAINING_ROWS = 50


class TrainingError(RuntimeError):
    """XGBoost refused to train, usually because of a bad parameter."""


@dataclass(frozen=True)
class TrainingParams:
    """Boosting settings; `extra` passes further raw XGBoost parameters and wins over the rest."""

    # The faster variants measured by bench/defaults_curve.py (README "Training defaults")
    # are not the defaults yet: see the README for why.
    num_boost_round: int = 600
    max_depth: int = 4
    learning_rate: float = 0.05
    min_child_weight: float = 1.0
    subsample: float = 0.9
    colsample_bytree: float = 0.9
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 40
    validation_fraction: float = 0.15
    seed: int = 42
    nthread: int = 0  # 0: every core of the machine
    max_bin: int = 256
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Every field, as stored with a training config (JSON-ready)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingParams:
        """The params a stored dict describes; an unknown name is refused, a missing one
        takes its default (so configs stored before a field existed still load)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training parameters {unknown}; known: {sorted(known)}")
        return cls(**values)

    def threads(self) -> int:
        """The threads XGBoost gets: `nthread`, or every core when it is 0."""
        if self.nthread < 0:
            raise TrainingError(f"nthread must be 0 (every core) or more, got {self.nthread}")
        return self.nthread or os.cpu_count() or 1

    def xgb_params(self) -> dict[str, Any]:
        """The parameter dict for `xgboost.train`."""
        return {
            "tree_method": "hist",
            # The target is a rate in [0, 1]: a logistic link keeps predictions in range.
            "objective": "reg:logistic",
            "eval_metric": "mae",
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "reg_lambda": self.reg_lambda,
            "max_bin": self.max_bin,
            "seed": self.seed,
            "nthread": self.threads(),
            **self.extra,
        }


@dataclass(frozen=True)
class TrainedModel:
    """A booster cut at its best iteration, and how it came to be."""

    booster: xgb.Booster
    best_iteration: int
    training_seconds: float  # building the matrices and boosting
    training_rows: int
    validation_rows: int


def usable_training_rows(frame: pd.DataFrame) -> int:
    """How many rows `train_ctr_model` could learn from: those outside the hold-out."""
    return int(len(frame) - holdout_mask(frame["video_id"]).sum())


def train_ctr_model(
    frame: pd.DataFrame,
    params: TrainingParams,
    weights: np.ndarray | None = None,
    *,
    split: TrainingSplit | None = None,
) -> TrainedModel:
    """Fits on non-hold-out rows, stopping early on a validation slice of them.

    `weights` (one per row, e.g. `video_weights`) make some videos count more. `split`
    (`training_split` of the frame with `params.validation_fraction`) saves hashing the ids
    again when the caller has it.

    The returned booster holds only the trees up to the best iteration, so the saved
    file and in-memory predictions agree without anyone passing an iteration range.
    """
    started = time.perf_counter()
    split = split or training_split(frame["video_id"], params.validation_fraction)
    training, validating = split.training, split.validation
    if not training.any() or not validating.any():
        raise ValueError(
            f"after setting aside the hold-out, {int(training.sum())} training and "
            f"{int(validating.sum())} validation rows remain out of {len(frame)}; "
            "both must be non-empty, so load more videos before training"
        )
    features, labels = feature_matrix(frame), target(frame)
    # `extra` may override the bins and threads; the matrices must use what training uses.
    xgb_params = params.xgb_params()
    matrix_settings = {
        "enable_categorical": True,
        "nthread": xgb_params["nthread"],
        "max_bin": xgb_params["max_bin"],
    }
    train_matrix = xgb.QuantileDMatrix(
        _Rows(features, labels, weights, training), **matrix_settings
    )
    # The validation rows are evaluated after every round: from raw values (a plain DMatrix)
    # that costs a third of what the same rows as quantile bins do, and predicts the same.
    rows = np.flatnonzero(validating)
    validation_matrix = xgb.DMatrix(
        features.take(rows),
        label=labels[rows],
        weight=None if weights is None else weights[rows],
        enable_categorical=True,
        nthread=xgb_params["nthread"],
    )
    release_free_memory()  # the blocks of rows copied for the matrices
    pause_point("training")
    booster = _boost(params, train_matrix, validation_matrix)
    best_iteration = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
    return TrainedModel(
        booster=booster[: best_iteration + 1],
        best_iteration=best_iteration,
        training_seconds=time.perf_counter() - started,
        training_rows=int(training.sum()),
        validation_rows=int(validating.sum()),
    )


# Rows are handed to XGBoost this many at a time: only one block of them is ever copied out
# of the frame, instead of the whole training part (two thirds of the frame's features).
# XGBoost sketches the quantiles over all blocks: on the 1M-video bench world the cuts from
# blocks of 65,536 and 262,144 rows equal those from one block of every row, and building
# the matrix peaked 18 MiB lower with the smaller blocks, in the same time.
BLOCK_ROWS = 65_536


class _Rows(xgb.DataIter):
    """The selected rows of the frame, in blocks of `BLOCK_ROWS`."""

    def __init__(
        self,
        features: pd.DataFrame,
        labels: np.ndarray,
        weights: np.ndarray | None,
        selected: np.ndarray,
    ) -> None:
        positions = np.flatnonzero(selected)
        self._blocks = [positions[i : i + BLOCK_ROWS] for i in range(0, len(positions), BLOCK_ROWS)]
        self._features, self._labels, self._weights = features, labels, weights
        self._next = 0
        super().__init__(release_data=True)

    def next(self, input_data) -> bool:
        if self._next == len(self._blocks):
            return False
        rows = self._blocks[self._next]
        input_data(
            data=self._features.take(rows),
            label=self._labels[rows],
            weight=None if self._weights is None else self._weights[rows],
        )
        self._next += 1
        return True

    def reset(self) -> None:
        self._next = 0


def _boost(
    params: TrainingParams, train_matrix: xgb.DMatrix, validation_matrix: xgb.DMatrix
) -> xgb.Booster:
    """Runs XGBoost, turning rejected and silently ignored parameters into a TrainingError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            booster = xgb.train(
                params.xgb_params(),
                train_matrix,
                num_boost_round=params.num_boost_round,
                evals=[(validation_matrix, "validation")],
                early_stopping_rounds=params.early_stopping_rounds,
                verbose_eval=False,
            )
        except xgb.core.XGBoostError as error:
            message = str(error).split("Stack trace:")[0].strip()
            raise TrainingError(
                f"XGBoost failed to train: {message} (check the XGBoost parameters)"
            ) from error
    for warning in caught:
        # A misspelt parameter is only a warning to XGBoost; here it fails the training.
        if "are not used" in str(warning.message):
            raise TrainingError(
                f"XGBoost does not know some training parameters: {warning.message}".strip()
            )
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return booster
