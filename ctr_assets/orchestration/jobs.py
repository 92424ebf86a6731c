"""The check job every trigger launches: the whole graph, or a part of it."""

import dagster as dg

from ctr_assets.orchestration.assets import GROUP

RETRAIN_CHECK_JOB = "retrain_check_job"
ACCURACY = dg.AssetKey("prediction_accuracy")
TRAINING_DATA = dg.AssetKey("real_training_data")
MODEL = dg.AssetKey("ctr_model")
CHAMPION = dg.AssetKey("champion_model")
REPORT = dg.AssetKey("retrain_report")

# One process per run: the run worker executes every step itself. With the default
# multiprocess executor each step ran in a child of the run worker, and a run worker killed
# with -9 (the OOM killer, a node going away) left that child training and promoting on its
# own after Dagster had marked the run failed and its pool slot was given to the next check.
retrain_check_job = dg.define_asset_job(
    RETRAIN_CHECK_JOB,
    selection=dg.AssetSelection.groups(GROUP),
    description="Measure accuracy, load training data, decide, retrain if needed, report.",
    tags={"ctr_assets/retrain": "true"},
    executor_def=dg.in_process_executor,
)
