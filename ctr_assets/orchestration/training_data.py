"""The description `real_training_data` materializes: what the training step will read.

The rows are read and screened exactly as the training step reads them (in this process, or
on the cluster's workers from one snapshot) and counted; in process each batch is let go
once counted, so no frame is built. Only the description is kept. The training step reads
`videos` again when it trains, so it learns from the rows as they are then; both reads count
their bad rows the same way, and the decision record carries the counts of the rows it
trained on.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from ctr_assets.data.training_frame import BAD_ROW_REASONS, RowSelection
from ctr_assets.db.connection import Database
from ctr_assets.orchestration.resources import TrainingCluster
from ctr_assets.retraining.training_set import TrainingSummary


def describe_training_data(
    db: Database, selection: RowSelection, cluster: TrainingCluster
) -> dict[str, Any]:
    """Reads the training rows where training would read them and describes them."""
    with cluster.source(db, selection, {}) as source:
        return training_data_metadata(source.describe(), selection, cluster.address())


def training_data_metadata(
    rows: TrainingSummary, selection: RowSelection, address: str | None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "dagster/row_count": rows.rows,
        "rows_read": rows.rows_read,
        "usable_rows": rows.usable_rows,
        "bad_rows": sum(rows.bad_rows.values()),
        **{f"bad_rows/{reason}": rows.bad_rows.get(reason, 0) for reason in BAD_ROW_REASONS},
        "bad_rows_by_reason": dg.MetadataValue.table(
            records=[dg.TableRecord({"reason": r, "rows": c}) for r, c in rows.bad_rows.items()],
            schema=dg.TableSchema(
                columns=[dg.TableColumn("reason", "string"), dg.TableColumn("rows", "int")]
            ),
        ),
        "min_impressions": selection.min_impressions,
        # Days before the newest video the read reaches back; "all" without a horizon.
        "horizon_days": (
            selection.horizon_days
            if selection.horizon_days is not None
            else dg.MetadataValue.text("all")
        ),
        "read_on": dg.MetadataValue.text(address or "in process"),
    }
    snapshot = getattr(rows, "snapshot", None)
    if snapshot is not None:  # read on a cluster
        metadata["snapshot"] = dg.MetadataValue.text(snapshot)
        metadata["partitions"] = len(rows.summaries)  # type: ignore[attr-defined]
        metadata["workers"] = len(rows.placement)  # type: ignore[attr-defined]
        metadata["partitions_by_worker"] = dg.MetadataValue.json(rows.placement)  # type: ignore[attr-defined]
    return metadata


def described_bad_rows(description: dict[str, Any]) -> dict[str, int]:
    """The bad-row counts out of a `real_training_data` description."""
    return {reason: int(description.get(f"bad_rows/{reason}") or 0) for reason in BAD_ROW_REASONS}
