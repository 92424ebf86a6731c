"""The champion as a predictor: what the ad platform calls for new videos.

Each prediction is recorded in `prediction_records` with the model version that made it,
so that its error can be measured once the outcome is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import xgboost as xgb

from ctr_assets.data.training_frame import feature_frame
from ctr_assets.db import writes
from ctr_assets.ml.evaluation import predict_ctr
from ctr_assets.models.registry import ModelRegistry, ModelVersion


class NoChampionError(RuntimeError):
    """Nothing to predict with yet."""


@dataclass(frozen=True)
class Predictions:
    model_version: str
    video_id: np.ndarray
    predicted_ctr: np.ndarray


class CTRPredictor:
    """Predicts with whatever model is champion now; reloads when the champion changes."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self._loaded: tuple[ModelVersion, xgb.Booster] | None = None

    def _champion(self) -> tuple[ModelVersion, xgb.Booster]:
        champion = self.registry.champion()
        if champion is None:
            raise NoChampionError(
                "there is no champion model yet; run `ctr-assets check-retrain` to train one"
            )
        if self._loaded is None or self._loaded[0].version != champion.version:
            # A damaged file is refused, naming the file, its checksum and the way out.
            self._loaded = (champion, self.registry.load_champion(champion))
        return self._loaded

    def predict(self, videos: pa.Table) -> Predictions:
        """CTR for each row of `videos` (columns as in the `videos` table)."""
        champion, booster = self._champion()
        frame = feature_frame(videos)
        return Predictions(
            model_version=champion.version,
            video_id=frame["video_id"].to_numpy(dtype=object),
            predicted_ctr=predict_ctr(booster, frame),
        )

    def predict_and_record(
        self,
        videos: pa.Table,
        predicted_at: datetime | np.ndarray,
        predicted_roas: np.ndarray | None = None,
    ) -> Predictions:
        """Predicts and appends one `prediction_records` row per video; `predicted_at` is
        one time for all or one per video."""
        predictions = self.predict(videos)
        n = len(predictions.video_id)
        roas = np.full(n, np.nan) if predicted_roas is None else np.asarray(predicted_roas, float)
        rows = pa.table(
            {
                "video_id": pa.array(predictions.video_id, pa.string()),
                "model_version": pa.array([predictions.model_version] * n, pa.string()),
                "predicted_ctr": pa.array(predictions.predicted_ctr, pa.float64()),
                "predicted_roas": pa.array(roas, pa.float64(), mask=np.isnan(roas)),
                "predicted_at": pa.array(
                    [predicted_at] * n if isinstance(predicted_at, datetime) else predicted_at,
                    pa.timestamp("us", tz="UTC"),
                ),
            }
        )
        writes.insert_predictions(self.registry.db, rows)
        return predictions
