"""Checks that hold the promotion to account, from the files as they were saved."""

from datetime import datetime

import dagster as dg

from ctr_assets.data.training_frame import TrainingData
from ctr_assets.ml.evaluation import score_on_holdout
from ctr_assets.ml.recency import recency_weights
from ctr_assets.models.registry import ModelVersion
from ctr_assets.orchestration.resources import CtrDatabase, ModelStore


@dg.asset_check(
    asset="ctr_model",
    blocking=True,
    additional_ins={"real_training_data": dg.AssetIn("real_training_data")},
)
def promoted_model_beats_predecessor(
    ctr_model: ModelVersion,
    real_training_data: TrainingData,
    database: CtrDatabase,
    models: ModelStore,
) -> dg.AssetCheckResult:
    """A model that became champion in this check beats the one it replaced on the same
    hold-out videos, re-scored from both checksum-verified files."""
    registry = models.registry(database.open())
    change = next((c for c in reversed(registry.history()) if c.version == ctr_model.version), None)
    if change is None:
        return dg.AssetCheckResult(
            passed=True,
            description=f"{ctr_model.version} was not promoted; the champion did not change",
            metadata={"promoted": False},
        )
    if change.previous_version is None:
        return dg.AssetCheckResult(
            passed=True,
            description=f"{ctr_model.version} is the first champion; nothing to beat",
            metadata={"promoted": True},
        )
    frame = real_training_data.frame
    as_of = datetime.fromisoformat(ctr_model.params["trained_as_of"])
    weights = recency_weights(
        frame["created_at"], as_of, ctr_model.params["recency_half_life_days"]
    )
    new = score_on_holdout(registry.load(ctr_model), frame, weights)
    old = score_on_holdout(registry.load(registry.get(change.previous_version)), frame, weights)
    return dg.AssetCheckResult(
        passed=new.mae < old.mae,
        description=(
            f"{ctr_model.version} hold-out MAE {new.mae:.4f} vs "
            f"{change.previous_version} {old.mae:.4f} on {new.rows} videos"
        ),
        metadata={"mae_new": new.mae, "mae_previous": old.mae, "holdout_rows": new.rows},
    )
