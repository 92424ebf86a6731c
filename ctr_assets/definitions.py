"""The code location: `ctr_assets.definitions:defs`."""

from __future__ import annotations

import dagster as dg

from ctr_assets.orchestration.assets import prediction_accuracy, real_training_data, retrain_check
from ctr_assets.orchestration.checks import promoted_model_beats_predecessor
from ctr_assets.orchestration.resources import CtrDatabase, ModelStore, RetrainSettings

defs = dg.Definitions(
    assets=[prediction_accuracy, real_training_data, retrain_check],
    asset_checks=[promoted_model_beats_predecessor],
    resources={
        "database": CtrDatabase(),
        "models": ModelStore(),
        "retrain_settings": RetrainSettings(),
    },
)
