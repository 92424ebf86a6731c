"""The check job every trigger launches: the whole graph, or a part of it."""

import dagster as dg

from ctr_assets.orchestration.assets import GROUP

RETRAIN_CHECK_JOB = "retrain_check_job"
ACCURACY = dg.AssetKey("prediction_accuracy")
TRAINING_DATA = dg.AssetKey("real_training_data")
MODEL = dg.AssetKey("ctr_model")
CHAMPION = dg.AssetKey("champion_model")
REPORT = dg.AssetKey("retrain_report")

retrain_check_job = dg.define_asset_job(
    RETRAIN_CHECK_JOB,
    selection=dg.AssetSelection.groups(GROUP),
    description="Measure accuracy, load training data, decide, retrain if needed, report.",
    tags={"ctr_assets/retrain": "true"},
)
