"""What a check trains on, read by the step that trains: in this process or on a cluster.

A check asks its `TrainingSource` for the data only when it has decided to train; the
source reads `videos` then (the asset `real_training_data` only describes them), so no copy
of the frame passes between steps. Both kinds of `TrainingSet` fit on the same rows with the
same hold-out, and hand back the challenger and its (and the champion's) predictions on the
hold-out videos: the promotion is judged on those, in the coordinating process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import pandas as pd
import xgboost as xgb

from ctr_assets.data.training_frame import (
    RowSelection,
    TrainingCounts,
    TrainingData,
    count_training_rows,
    load_training_frame,
)
from ctr_assets.db.connection import Database
from ctr_assets.memory import release_free_memory
from ctr_assets.ml.evaluation import predict_ctr
from ctr_assets.ml.model_inputs import feature_matrix, target
from ctr_assets.ml.split import holdout_mask, training_split
from ctr_assets.ml.training import TrainedModel, TrainingParams, train_ctr_model
from ctr_assets.ml.weights import Weighting


@dataclass(frozen=True)
class FittedChallenger:
    """A challenger and the hold-out it is judged on.

    `holdout` has one row per hold-out video: `video_id`, `ctr` (the outcome), `weight`
    (its weight, NaN when unweighted), `platform`, `roas_per_ctr`, `challenger`
    and, when there is a champion, `champion` (predicted CTRs).
    """

    trained: TrainedModel
    holdout: pd.DataFrame


class TrainingSet(Protocol):
    """Training rows that have been read, with what was left out of them."""

    rows_read: int
    bad_rows: dict[str, int]

    @property
    def rows(self) -> int: ...

    @property
    def usable_rows(self) -> int:
        """Rows outside the hold-out: what the challenger can learn from."""
        ...

    def fit(
        self,
        params: TrainingParams,
        as_of: datetime,
        weighting: Weighting,
        champion: xgb.Booster | None,
    ) -> FittedChallenger: ...


class TrainingSource(Protocol):
    """Reads the training rows for the step that trains.

    `bad_rows` are the counts as last described (by `real_training_data`): what a decision
    that trains nothing records.
    """

    bad_rows: dict[str, int]

    def read(self) -> TrainingSet: ...

    def describe(self) -> TrainingSummary:
        """What `read` would return, counted without keeping the rows."""
        ...


class TrainingSummary(Protocol):
    """Counts of the training rows (what `real_training_data` describes)."""

    rows: int
    rows_read: int
    usable_rows: int
    bad_rows: dict[str, int]


@dataclass(frozen=True)
class FrameTrainingSet:
    """The training frame in this process's memory."""

    data: TrainingData

    def read(self) -> TrainingSet:
        """Already read: a frame is its own source."""
        return self

    @property
    def rows_read(self) -> int:
        return self.data.rows_read

    @property
    def bad_rows(self) -> dict[str, int]:
        return self.data.bad_rows

    @property
    def rows(self) -> int:
        return len(self.data.frame)

    @property
    def usable_rows(self) -> int:
        frame = self.data.frame
        return int(len(frame) - holdout_mask(frame["video_id"]).sum()) if len(frame) else 0

    def fit(
        self,
        params: TrainingParams,
        as_of: datetime,
        weighting: Weighting,
        champion: xgb.Booster | None,
    ) -> FittedChallenger:
        frame = self.data.frame
        weights = weighting.of(frame, as_of)
        split = training_split(frame["video_id"], params.validation_fraction)
        trained = train_ctr_model(frame, params, weights, split=split)
        release_free_memory()  # the training matrices
        return FittedChallenger(
            trained, holdout_predictions(frame, weights, trained.booster, champion, split.holdout)
        )


def holdout_predictions(
    frame: pd.DataFrame,
    weights: np.ndarray | None,
    challenger: xgb.Booster,
    champion: xgb.Booster | None,
    mask: np.ndarray | None = None,
) -> pd.DataFrame:
    """The hold-out rows of `frame` (`mask`, else the hash of their ids) with both models'
    predictions (see `FittedChallenger`). Only the hold-out's features are taken out of the
    frame, once; both models predict them in place."""
    if mask is None:
        mask = holdout_mask(frame["video_id"]) if len(frame) else np.zeros(0, dtype=bool)
    positions = np.flatnonzero(mask)
    features = feature_matrix(frame).take(positions)
    result = pd.DataFrame(
        {
            "video_id": frame["video_id"].take(positions).to_numpy(),
            "ctr": target(frame)[positions],
            "weight": np.nan if weights is None else weights[positions],
            "platform": frame["platform"].take(positions).astype(str).to_numpy(),
            "roas_per_ctr": frame["roas_per_ctr"].take(positions).to_numpy(),
        },
        index=frame.index.take(positions),
    )
    empty = not len(positions)
    result["challenger"] = np.zeros(0) if empty else predict_ctr(challenger, features)
    if champion is not None:
        result["champion"] = np.zeros(0) if empty else predict_ctr(champion, features)
    return result


@dataclass(frozen=True)
class InProcessSource:
    """Reads `videos` in this process with `load_training_frame`."""

    db: Database
    rows: RowSelection
    bad_rows: dict[str, int]

    def read(self) -> TrainingSet:
        return FrameTrainingSet(load_training_frame(self.db, self.rows))

    def describe(self) -> TrainingCounts:
        """The rows `read` would return, counted one batch at a time (no frame is built)."""
        return count_training_rows(
            self.db, self.rows, lambda ids: int(len(ids) - holdout_mask(ids).sum())
        )
