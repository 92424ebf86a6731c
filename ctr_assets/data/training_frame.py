"""The training frame: one row per video with enough impressions, target `ctr`.

Rows arrive as Arrow through ADBC (binary COPY underneath, no per-row Python), are
screened for bad data in Arrow, and only then become a pandas frame. Bad rows are
counted per reason and left out; they never reach the model and never crash a run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ctr_assets.data.features import (
    BOOLEAN_FEATURES,
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    TARGET,
)
from ctr_assets.db.connection import Database

# Each bad row is counted once, under the first reason it meets, in this order.
BAD_ROW_REASONS: tuple[str, ...] = (
    "null_target",  # impressions or clicks is NULL: no CTR to learn from
    "negative_counts",  # impressions, clicks or conversions below zero
    "clicks_exceed_impressions",  # CTR above 1
    "non_finite_feature",  # NaN or infinity in a numeric feature (NULL is fine: missing)
    "unknown_category",  # a category outside the feature contract
)

_COUNT_COLUMNS = ("impressions", "clicks", "conversions")


@dataclass(frozen=True)
class TrainingData:
    """The clean frame and what was left out of it."""

    frame: pd.DataFrame
    rows_read: int
    bad_rows: dict[str, int]

    @property
    def bad_row_total(self) -> int:
        return sum(self.bad_rows.values())


def training_query(min_impressions: int) -> str:
    """Eligible videos, plus rows whose counts are NULL or negative so they get counted."""
    if int(min_impressions) < 1:
        raise ValueError(f"min_impressions must be at least 1, got {min_impressions}")
    columns = ", ".join(
        [
            "video_id",
            *NUMERIC_FEATURES,
            *BOOLEAN_FEATURES,
            *CATEGORICAL_FEATURES,
            *_COUNT_COLUMNS,
            "created_at",
        ]
    )
    return (
        f"SELECT {columns} FROM videos "
        f"WHERE impressions >= {int(min_impressions)} "
        "OR impressions IS NULL OR impressions < 0"
    )


def load_training_frame(db: Database, min_impressions: int = 100) -> TrainingData:
    """Reads `videos` into the frame the model trains on."""
    with db.connect_arrow() as conn, conn.cursor() as cur:
        cur.execute(training_query(min_impressions))
        table = cur.fetch_arrow_table()
    return screen_training_table(table)


def screen_training_table(table: pa.Table) -> TrainingData:
    """Counts bad rows per reason, drops them, and converts the rest to the frame."""
    reason_masks = _bad_row_masks(table)
    already_bad = pa.array(np.zeros(table.num_rows, dtype=bool))
    bad_rows: dict[str, int] = {}
    for reason in BAD_ROW_REASONS:
        first_time = pc.and_(reason_masks[reason], pc.invert(already_bad))
        bad_rows[reason] = int(pc.sum(first_time).as_py() or 0)
        already_bad = pc.or_(already_bad, reason_masks[reason])
    clean = table.filter(pc.invert(already_bad))
    return TrainingData(frame=_to_frame(clean), rows_read=table.num_rows, bad_rows=bad_rows)


def _bad_row_masks(table: pa.Table) -> dict[str, pa.Array]:
    def definitely(mask: pa.ChunkedArray) -> pa.Array:
        return pc.fill_null(mask, False).combine_chunks()

    impressions, clicks = table["impressions"], table["clicks"]
    negative = pc.or_kleene(
        pc.or_kleene(pc.less(impressions, 0), pc.less(clicks, 0)),
        pc.less(table["conversions"], 0),
    )
    non_finite = pa.array(np.zeros(table.num_rows, dtype=bool))
    for name in NUMERIC_FEATURES:
        column = table[name]
        if pa.types.is_floating(column.type):
            non_finite = pc.or_(non_finite, definitely(pc.invert(pc.is_finite(column))))
    unknown = pa.array(np.zeros(table.num_rows, dtype=bool))
    for name, categories in CATEGORICAL_FEATURES.items():
        column = table[name]
        outside = pc.and_(
            pc.is_valid(column), pc.is_null(pc.index_in(column, pa.array(categories)))
        )
        unknown = pc.or_(unknown, definitely(outside))
    return {
        "null_target": definitely(pc.or_(pc.is_null(impressions), pc.is_null(clicks))),
        "negative_counts": definitely(negative),
        "clicks_exceed_impressions": definitely(pc.greater(clicks, impressions)),
        "non_finite_feature": non_finite,
        "unknown_category": unknown,
    }


def feature_frame(table: pa.Table) -> pd.DataFrame:
    """`video_id` and the model's features, typed as the model expects.

    A category outside the contract becomes missing here; the training path has already
    counted such rows and left them out.
    """

    def as_float(name: str) -> np.ndarray:
        return table[name].cast(pa.float64()).to_numpy()

    columns: dict[str, object] = {"video_id": table["video_id"].to_pandas()}
    for name in (*NUMERIC_FEATURES, *BOOLEAN_FEATURES):
        columns[name] = as_float(name)
    for name, categories in CATEGORICAL_FEATURES.items():
        codes = pc.fill_null(pc.index_in(table[name], pa.array(categories)), -1)
        columns[name] = pd.Categorical.from_codes(codes.to_numpy(), categories=list(categories))
    return pd.DataFrame(columns)


def _to_frame(table: pa.Table) -> pd.DataFrame:
    frame = feature_frame(table)
    impressions = table["impressions"].to_numpy()
    clicks = table["clicks"].to_numpy()
    frame["impressions"] = impressions
    frame["clicks"] = clicks
    frame["created_at"] = table["created_at"].to_pandas()
    frame[TARGET] = clicks / impressions
    return frame
