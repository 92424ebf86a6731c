"""Shared ML fixtures: one synthetic frame and one model trained on it per session."""

from __future__ import annotations

import pandas as pd
import pytest

from ctr_assets.ml.training import TrainedModel, TrainingParams, train_ctr_model
from ctr_assets_tests.ml.synthetic import synthetic_training_frame


@pytest.fixture(scope="session")
def training_frame() -> pd.DataFrame:
    return synthetic_training_frame(rows=4000, seed=0)


@pytest.fixture(scope="session")
def trained_model(training_frame: pd.DataFrame) -> TrainedModel:
    return train_ctr_model(training_frame, TrainingParams())
