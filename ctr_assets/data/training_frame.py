"""The training frame: one row per video with enough impressions, target `ctr`.

Rows arrive as Arrow through ADBC (binary COPY underneath, no per-row Python), are
screened for bad data in Arrow, and only then become a pandas frame. Bad rows are
counted per reason and left out; they never reach the model and never crash a run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
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
    """Reads `videos` into the frame the model trains on, one Arrow batch at a time."""
    with db.connect_arrow() as conn, conn.cursor() as cur:
        cur.execute(training_query(min_impressions))
        return screen_training_batches(cur.fetch_record_batch())


def screen_training_table(table: pa.Table) -> TrainingData:
    """`screen_training_batches` for a table already in memory."""
    return screen_training_batches(table.to_batches())


def screen_training_batches(batches: Iterable[pa.RecordBatch]) -> TrainingData:
    """Counts bad rows per reason, drops them, and converts the rest to the frame.

    Batches are screened and converted as they arrive, so the unfiltered rows are never
    all in memory beside the frame: peak memory stays near the frame's own size.
    """
    bad_rows = dict.fromkeys(BAD_ROW_REASONS, 0)
    rows_read = 0
    parts: dict[str, list] = defaultdict(list)
    for batch in batches:
        rows_read += batch.num_rows
        reason_masks = _bad_row_masks(batch)
        already_bad = pa.array(np.zeros(batch.num_rows, dtype=bool))
        for reason in BAD_ROW_REASONS:
            first_time = pc.and_(reason_masks[reason], pc.invert(already_bad))
            bad_rows[reason] += int(pc.sum(first_time).as_py() or 0)
            already_bad = pc.or_(already_bad, reason_masks[reason])
        clean = batch.filter(pc.invert(already_bad))
        for name, values in _training_columns(clean).items():
            parts[name].append(values)
    return TrainingData(
        frame=_assemble(parts, training=True), rows_read=rows_read, bad_rows=bad_rows
    )


def _bad_row_masks(batch: pa.RecordBatch) -> dict[str, pa.Array]:
    def definitely(mask: pa.Array) -> pa.Array:
        return pc.fill_null(mask, False)

    impressions, clicks = batch["impressions"], batch["clicks"]
    negative = pc.or_kleene(
        pc.or_kleene(pc.less(impressions, 0), pc.less(clicks, 0)),
        pc.less(batch["conversions"], 0),
    )
    non_finite = pa.array(np.zeros(batch.num_rows, dtype=bool))
    for name in NUMERIC_FEATURES:
        column = batch[name]
        if pa.types.is_floating(column.type):
            non_finite = pc.or_(non_finite, definitely(pc.invert(pc.is_finite(column))))
    unknown = pa.array(np.zeros(batch.num_rows, dtype=bool))
    for name, categories in CATEGORICAL_FEATURES.items():
        column = batch[name]
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


# How each column is kept between batches and joined at the end.
_ARROW_COLUMNS = ("video_id", "created_at")
_CODE_COLUMNS = tuple(CATEGORICAL_FEATURES)


def _feature_columns(batch: pa.RecordBatch) -> dict[str, object]:
    columns: dict[str, object] = {"video_id": batch["video_id"]}
    for name in (*NUMERIC_FEATURES, *BOOLEAN_FEATURES):
        columns[name] = np.asarray(batch[name].cast(pa.float64()).to_numpy(zero_copy_only=False))
    for name, categories in CATEGORICAL_FEATURES.items():
        codes = pc.fill_null(pc.index_in(batch[name], pa.array(categories)), -1)
        columns[name] = np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int8)
    return columns


def _training_columns(batch: pa.RecordBatch) -> dict[str, object]:
    columns = _feature_columns(batch)
    columns["impressions"] = batch["impressions"].to_numpy(zero_copy_only=False)
    columns["clicks"] = batch["clicks"].to_numpy(zero_copy_only=False)
    columns["created_at"] = batch["created_at"]
    return columns


def _assemble(parts: dict[str, list], training: bool) -> pd.DataFrame:
    """Joins the per-batch pieces column by column, freeing each column's pieces as it goes."""
    frame: dict[str, object] = {}
    order = ["video_id", *NUMERIC_FEATURES, *BOOLEAN_FEATURES, *CATEGORICAL_FEATURES]
    if training:
        order += ["impressions", "clicks", "created_at"]
    for name in order:
        pieces = parts.pop(name, [])
        if name in _ARROW_COLUMNS:
            kind = pa.string() if name == "video_id" else pa.timestamp("us", tz="UTC")
            frame[name] = pa.chunked_array(pieces, type=kind).to_pandas()
        elif name in _CODE_COLUMNS:
            codes = np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int8)
            frame[name] = pd.Categorical.from_codes(
                codes, categories=list(CATEGORICAL_FEATURES[name])
            )
        else:
            dtype = np.int64 if name in ("impressions", "clicks") else np.float64
            frame[name] = np.concatenate(pieces) if pieces else np.empty(0, dtype=dtype)
        del pieces
    # Each column keeps its own array: no consolidating copy of the float block.
    result = pd.DataFrame(frame, copy=False)
    if training:
        result[TARGET] = result["clicks"] / result["impressions"]
    return result


def feature_frame(table: pa.Table) -> pd.DataFrame:
    """`video_id` and the model's features, typed as the model expects.

    A category outside the contract becomes missing here; the training path has already
    counted such rows and left them out.
    """
    parts: dict[str, list] = defaultdict(list)
    for batch in table.to_batches():
        for name, values in _feature_columns(batch).items():
            parts[name].append(values)
    return _assemble(parts, training=False)
