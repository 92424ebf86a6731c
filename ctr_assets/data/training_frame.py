"""The training frame: one row per video with enough impressions, target `ctr`.

Rows arrive as Arrow through ADBC (binary COPY underneath, no per-row Python), are
screened for bad data in Arrow, and only then become a pandas frame. Bad rows are
counted per reason and left out; they never reach the model and never crash a run.

Reading and screening overlap (`read_ahead`), and each screened batch is copied straight
into columns that grow in place, so the frame is built once, with no final
concatenation and no second copy of it in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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
from ctr_assets.db.connection import Database, small_batches
from ctr_assets.db.read_ahead import read_ahead
from ctr_assets.faults import pause_point
from ctr_assets.memory import release_free_memory

# Each bad row is counted once, under the first reason it meets, in this order.
BAD_ROW_REASONS: tuple[str, ...] = (
    "null_target",  # impressions or clicks is NULL: no CTR to learn from
    "negative_counts",  # impressions, clicks or conversions below zero
    "clicks_exceed_impressions",  # CTR above 1
    "non_finite_feature",  # NaN or infinity in a numeric feature (NULL is fine: missing)
    "unknown_category",  # a category outside the feature contract
    "invalid_created_at",  # created_at at ±infinity or past what a timestamp column holds
)

_COUNT_COLUMNS = ("impressions", "clicks", "conversions")

# A datetime64[us] column ends in the year 294247; PostgreSQL goes further and has
# ±infinity, which the driver would silently wrap around to a date in 290,000 BC. Such a
# creation time is read as NULL and its row counted as `invalid_created_at`.
_CREATED_AT_HELD = (
    "(created_at > '-infinity' AND created_at < '294247-01-01 00:00:00+00'::timestamptz)"
)


@dataclass(frozen=True)
class TrainingData:
    """The clean frame and what was left out of it."""

    frame: pd.DataFrame
    rows_read: int
    bad_rows: dict[str, int]

    @property
    def bad_row_total(self) -> int:
        return sum(self.bad_rows.values())


@dataclass(frozen=True)
class RowSelection:
    """Which videos the training read selects.

    A training row is a video with at least `min_impressions` impressions. With a
    `horizon_days`, it must also have been created at most that many days before the newest
    such video: under recency weights an older video weighs next to nothing (7 half-lives:
    under 1/128 of the newest's), so it is not read at all, neither trained on nor judged on.
    The horizon counts back from the newest video, not from the check's `as_of`, so data
    that stopped arriving still trains a model; a video dated after the database's clock
    does not count as the newest (unless all are), but is read. Rows whose counts or
    creation time are broken are selected too, so that they are counted as bad.
    """

    min_impressions: int = 100
    horizon_days: float | None = None

    def __post_init__(self) -> None:
        if int(self.min_impressions) < 1:
            raise ValueError(f"min_impressions must be at least 1, got {self.min_impressions}")
        if self.horizon_days is not None and not self.horizon_days > 0:
            raise ValueError(f"horizon_days must be positive or None, got {self.horizon_days}")

    def condition(self) -> str:
        """The SQL condition on `videos`."""
        eligible = (
            f"(impressions >= {int(self.min_impressions)} OR impressions IS NULL "
            "OR impressions < 0)"
        )
        if self.horizon_days is None:
            return eligible
        # The newest video not dated in the future (a mistyped year must not move the
        # horizon past every real video); the newest of all when every one is.
        newest_of = (
            "(SELECT max(created_at) FROM videos "
            f"WHERE impressions >= {int(self.min_impressions)} AND {_CREATED_AT_HELD}{{}})"
        )
        newest = f"coalesce({newest_of.format(' AND created_at <= now()')}, {newest_of.format('')})"
        seconds = float(self.horizon_days) * 86_400
        recent = (
            f"(created_at >= {newest} - make_interval(secs => {seconds!r}) "
            f"OR created_at IS NULL OR NOT {_CREATED_AT_HELD})"
        )
        return f"{eligible} AND {recent}"

    def describe(self) -> str:
        """In words, for a reason or a log line."""
        return (
            f"videos with at least {self.min_impressions} impressions"
            f"{within_horizon(self.horizon_days)}"
        )


def within_horizon(horizon_days: float | None) -> str:
    """The horizon in words, to follow "videos ...": empty without one."""
    return "" if horizon_days is None else f" created within {horizon_days:g} days of the newest"


def training_query(rows: RowSelection, part: str | None = None) -> str:
    """The selected videos (`RowSelection`), every column the frame is built from.

    `part` is a further SQL condition that selects one partition of `videos` (a block
    range, see `ctr_assets.cluster.snapshot`); unset, the whole table.
    """
    columns = ", ".join(
        [
            "video_id",
            *NUMERIC_FEATURES,
            *BOOLEAN_FEATURES,
            *CATEGORICAL_FEATURES,
            *_COUNT_COLUMNS,
            "spend",
            "revenue",
            f"CASE WHEN {_CREATED_AT_HELD} THEN created_at END AS created_at",
            f"NOT {_CREATED_AT_HELD} AS created_at_invalid",
        ]
    )
    where = rows.condition() if part is None else f"({part}) AND {rows.condition()}"
    return f"SELECT {columns} FROM videos WHERE {where}"


@dataclass(frozen=True)
class TablePart:
    """One partition of `videos` as seen by an exported snapshot: what a cluster worker reads.

    `condition` selects the partition's rows (a block range); `snapshot_id` is the value of
    `pg_export_snapshot()` in the coordinator's still-open transaction, so that every part
    sees the same rows; `share` is the part's expected fraction of the table.
    """

    snapshot_id: str
    condition: str
    share: float = 1.0

    def __post_init__(self) -> None:
        if not _SNAPSHOT_ID.fullmatch(self.snapshot_id):
            raise ValueError(f"not an exported snapshot id: {self.snapshot_id!r}")


_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")


def load_training_frame(
    db: Database, rows: RowSelection = RowSelection(), part: TablePart | None = None
) -> TrainingData:
    """Reads the selected `rows` of `videos` (or of one `part` of it) into the frame the
    model trains on, one Arrow batch at a time. Both modes, in process and on a cluster,
    read and screen through here."""
    with _training_batches(db, rows, part) as (batches, expected_rows):
        data = screen_training_batches(batches, expected_rows=expected_rows)
    release_free_memory()  # the batches: the frame is all that is kept
    return data


@dataclass(frozen=True)
class TrainingCounts:
    """What `load_training_frame` would keep and leave out, counted batch by batch."""

    rows: int  # kept: the frame's rows
    rows_read: int
    bad_rows: dict[str, int]
    usable_rows: int  # kept rows `usable` counted (those outside the hold-out)


def count_training_rows(
    db: Database, selection: RowSelection, usable: Callable[[pd.Series], int]
) -> TrainingCounts:
    """The same read and screening as `load_training_frame`, but each batch is let go once
    counted: only one batch is ever in memory. `usable` counts, among a batch's kept
    `video_id`s, those the model may learn from."""
    bad_rows = dict.fromkeys(BAD_ROW_REASONS, 0)
    rows_read = rows = usable_rows = 0
    with _training_batches(db, selection, None) as (batches, _expected):
        for batch in batches:
            rows_read += batch.num_rows
            keep = _screen(batch, _category_codes(batch), bad_rows)
            ids = batch["video_id"] if keep is None else batch["video_id"].filter(keep)
            ids = ids.to_pandas()
            rows += len(ids)
            usable_rows += usable(ids)
    release_free_memory()
    return TrainingCounts(rows, rows_read, bad_rows, usable_rows)


@contextmanager
def _training_batches(
    db: Database, rows: RowSelection, part: TablePart | None
) -> Iterator[tuple[Iterator[pa.RecordBatch], int]]:
    """The training query's Arrow batches, read ahead, and how many rows they likely hold."""
    with db.connect_arrow() as conn, conn.cursor() as cur:
        if part is not None:
            # ADBC has begun a transaction; it takes the coordinator's snapshot before any
            # query, as PostgreSQL requires.
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute(f"SET TRANSACTION SNAPSHOT '{part.snapshot_id}'")
        cur.execute(_ESTIMATED_VIDEOS)
        (estimated_rows,) = cur.fetchone()
        share = 1.0 if part is None else part.share
        small_batches(cur)
        cur.execute(training_query(rows, None if part is None else part.condition))
        with read_ahead(cur.fetch_record_batch()) as batches:
            pause_point("loading")
            yield batches, max(0, int(int(estimated_rows) * share))


# The planner's row count of `videos` (-1 if never analyzed): the frame's likely size.
_ESTIMATED_VIDEOS = (
    "SELECT coalesce(max(reltuples), -1)::bigint FROM pg_class WHERE oid = to_regclass('videos')"
)


def screen_training_table(table: pa.Table) -> TrainingData:
    """`screen_training_batches` for a table already in memory."""
    return screen_training_batches(table.to_batches(), expected_rows=table.num_rows)


def screen_training_batches(
    batches: Iterable[pa.RecordBatch], expected_rows: int = 0
) -> TrainingData:
    """Counts bad rows per reason, drops them, and copies the rest into the frame.

    Batches are screened and copied as they arrive, so the unfiltered rows are never
    all in memory beside the frame: peak memory stays near the frame's own size.
    `expected_rows` sizes the columns up front (a guess is fine: they grow past it, and
    room never written to costs no memory).
    """
    bad_rows = dict.fromkeys(BAD_ROW_REASONS, 0)
    rows_read = 0
    builder = _FrameBuilder(training=True, expected_rows=expected_rows)
    for batch in batches:
        rows_read += batch.num_rows
        codes = _category_codes(batch)
        builder.append(batch, codes, keep=_screen(batch, codes, bad_rows))
    return TrainingData(frame=builder.finish(), rows_read=rows_read, bad_rows=bad_rows)


def feature_frame(table: pa.Table) -> pd.DataFrame:
    """`video_id` and the model's features, typed as the model expects.

    A category outside the contract becomes missing here; the training path has already
    counted such rows and left them out.
    """
    builder = _FrameBuilder(training=False, expected_rows=table.num_rows)
    for batch in table.to_batches():
        builder.append(batch, _category_codes(batch), keep=None)
    return builder.finish()


def _category_codes(batch: pa.RecordBatch) -> dict[str, pa.Array]:
    """Each categorical column as positions in its category list (NULL: missing or unknown)."""
    return {
        name: pc.index_in(batch[name], pa.array(categories))
        for name, categories in CATEGORICAL_FEATURES.items()
    }


def _screen(
    batch: pa.RecordBatch, codes: dict[str, pa.Array], bad_rows: dict[str, int]
) -> np.ndarray | None:
    """Adds the batch's bad rows to `bad_rows`; the rows to keep, or None for all of them."""
    masks = _bad_row_masks(batch, codes)
    if not pc.any(_any_of(masks, batch.num_rows)).as_py():
        return None
    already_bad = np.zeros(batch.num_rows, dtype=bool)
    for reason, mask in zip(BAD_ROW_REASONS, masks, strict=True):
        bad = mask.to_numpy(zero_copy_only=False)
        bad_rows[reason] += int(np.count_nonzero(bad & ~already_bad))
        already_bad |= bad
    return ~already_bad


def _bad_row_masks(batch: pa.RecordBatch, codes: dict[str, pa.Array]) -> list[pa.Array]:
    """One mask per reason, in `BAD_ROW_REASONS` order, NULL counted as not bad."""

    def definitely(mask: pa.Array) -> pa.Array:
        return pc.fill_null(mask, False)

    impressions, clicks = batch["impressions"], batch["clicks"]
    negative = pc.or_kleene(
        pc.or_kleene(pc.less(impressions, 0), pc.less(clicks, 0)),
        pc.less(batch["conversions"], 0),
    )
    non_finite = []
    for name in NUMERIC_FEATURES:
        column = batch[name]
        if pa.types.is_floating(column.type):
            non_finite.append(definitely(pc.invert(pc.is_finite(column))))
    unknown = [
        definitely(pc.and_(pc.is_valid(batch[name]), pc.is_null(codes[name])))
        for name in CATEGORICAL_FEATURES
    ]
    # Flagged by `training_query`; a table built elsewhere has no such column.
    created_at_invalid = (
        [definitely(batch["created_at_invalid"])]
        if "created_at_invalid" in batch.schema.names
        else []
    )
    return [
        definitely(pc.or_(pc.is_null(impressions), pc.is_null(clicks))),
        definitely(negative),
        definitely(pc.greater(clicks, impressions)),
        _any_of(non_finite, batch.num_rows),
        _any_of(unknown, batch.num_rows),
        _any_of(created_at_invalid, batch.num_rows),
    ]


def _any_of(masks: list[pa.Array], rows: int) -> pa.Array:
    if not masks:
        return pa.array(np.zeros(rows, dtype=bool))
    result = masks[0]
    for mask in masks[1:]:
        result = pc.or_(result, mask)
    return result


def _roas_per_ctr(batch: pa.RecordBatch) -> np.ndarray:
    """ROAS / CTR per video, revenue per click over spend per impression: what turns a CTR
    (predicted or observed) into a ROAS. NaN where it is unknown (no click, no spend, no
    revenue recorded)."""

    def floats(name: str) -> np.ndarray:
        # safe=False: counts beyond 2^53 round to the nearest double instead of failing.
        return batch[name].cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)

    if not {"spend", "revenue"} <= set(batch.schema.names):
        return np.full(batch.num_rows, np.nan)  # a table read without the money columns
    impressions, clicks = floats("impressions"), floats("clicks")
    spend, revenue = floats("spend"), floats("revenue")
    known = (clicks > 0) & (spend > 0) & np.isfinite(revenue) & (revenue >= 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = revenue * impressions / (clicks * spend)
    return np.where(known & np.isfinite(ratio), ratio, np.nan)


class _GrowingColumn:
    """A numpy column filled batch by batch, in place.

    Its room is reserved with `np.empty`, whose pages take memory only once written, so
    a generous guess costs nothing; past it the column doubles (one copy), and `finish`
    gives the unused room back (realloc shrinks in place).
    """

    def __init__(self, dtype: np.dtype | type, capacity: int) -> None:
        self.values = np.empty(max(capacity, 1), dtype=dtype)
        self.size = 0

    def append(self, values: np.ndarray, keep: np.ndarray | None) -> None:
        count = len(values) if keep is None else int(np.count_nonzero(keep))
        end = self.size + count
        if end > len(self.values):
            grown = np.empty(max(end, 2 * len(self.values)), dtype=self.values.dtype)
            grown[: self.size] = self.values[: self.size]
            self.values = grown
        target = self.values[self.size : end]
        if keep is None:
            target[...] = values
        else:
            np.compress(keep, values, out=target)
        del target  # no view may outlive the resize in `finish`
        self.size = end

    def finish(self) -> np.ndarray:
        self.values.resize(self.size, refcheck=False)
        return self.values


_FLOAT_COLUMNS = (*NUMERIC_FEATURES, *BOOLEAN_FEATURES)


class _FrameBuilder:
    """Screened batches in, the model's frame out; see `load_training_frame`."""

    def __init__(self, training: bool, expected_rows: int) -> None:
        self.training = training
        self.video_ids: list[pa.Array] = []
        dtypes: dict[str, np.dtype | type | str] = {
            **dict.fromkeys(_FLOAT_COLUMNS, np.float64),
            **dict.fromkeys(CATEGORICAL_FEATURES, np.int8),
        }
        if training:
            dtypes.update(
                impressions=np.int64,
                clicks=np.int64,
                roas_per_ctr=np.float64,
                created_at="datetime64[us]",
            )
        self.columns = {name: _GrowingColumn(kind, expected_rows) for name, kind in dtypes.items()}

    def append(
        self, batch: pa.RecordBatch, codes: dict[str, pa.Array], keep: np.ndarray | None
    ) -> None:
        ids = batch["video_id"]
        # A copy either way: a slice of the batch would keep the whole batch alive.
        self.video_ids.append(
            pa.concat_arrays([ids]) if keep is None else ids.filter(pa.array(keep))
        )
        for name in _FLOAT_COLUMNS:
            # Unsafe: a bigint past 2**53 (an audience size, say) rounds to the nearest
            # double, as the model would see it anyway, instead of failing the whole load.
            values = batch[name].cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)
            self.columns[name].append(values, keep)
        for name, positions in codes.items():
            as_codes = pc.fill_null(positions, -1).cast(pa.int8())  # -1: missing
            self.columns[name].append(as_codes.to_numpy(), keep)
        if self.training:
            for name in ("impressions", "clicks"):
                counts = pc.fill_null(batch[name].cast(pa.int64()), 0)  # NULL rows are bad
                self.columns[name].append(counts.to_numpy(), keep)
            self.columns["roas_per_ctr"].append(_roas_per_ctr(batch), keep)
            created = batch["created_at"].cast(pa.timestamp("us", tz="UTC"))
            self.columns["created_at"].append(created.to_numpy(zero_copy_only=False), keep)

    def finish(self) -> pd.DataFrame:
        frame: dict[str, object] = {
            "video_id": pa.chunked_array(self.video_ids, type=pa.string()).to_pandas()
        }
        for name in _FLOAT_COLUMNS:
            frame[name] = self.columns[name].finish()
        for name, categories in CATEGORICAL_FEATURES.items():
            codes = self.columns[name].finish()
            frame[name] = pd.Categorical.from_codes(codes, categories=list(categories))
        if self.training:
            frame["impressions"] = self.columns["impressions"].finish()
            frame["clicks"] = self.columns["clicks"].finish()
            frame["roas_per_ctr"] = self.columns["roas_per_ctr"].finish()
            created = self.columns["created_at"].finish()
            frame["created_at"] = pd.DatetimeIndex(created).tz_localize("UTC")
        # Each column keeps its own array: no consolidating copy of the float block.
        result = pd.DataFrame(frame, copy=False)
        if self.training:
            result[TARGET] = result["clicks"] / result["impressions"]
        return result
