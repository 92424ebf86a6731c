from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ctr_assets.data.features import CATEGORICAL_FEATURES, FEATURES, TARGET
from ctr_assets.data.training_frame import (
    BAD_ROW_REASONS,
    RowSelection,
    count_training_rows,
    load_training_frame,
    screen_training_batches,
    screen_training_table,
)
from ctr_assets.db.connection import Database
from ctr_assets.ml.split import holdout_mask
from ctr_assets.orchestration.resources import RetrainSettings
from ctr_assets.simulation.populate import populate
from ctr_assets_tests.world_specs import END, small_world

GOOD_ROW = {
    "video_id": "v1",
    "duration_s": 15.0,
    "hook_strength": 0.7,
    "scene_count": 4,
    "text_overlay_ratio": 0.1,
    "face_time_ratio": 0.3,
    "music_energy": None,  # a missing feature is allowed
    "daily_budget": 25.0,
    "audience_size": 1_000_000,
    "has_captions": True,
    "has_voiceover": None,
    "platform": "tiktok",
    "objective": "traffic",
    "aspect_ratio": "9:16",
    "impressions": 1000,
    "clicks": 40,
    "conversions": 2,
    "created_at": datetime(2026, 11, 1, tzinfo=UTC),
}
SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("duration_s", pa.float64()),
        ("hook_strength", pa.float64()),
        ("scene_count", pa.int32()),
        ("text_overlay_ratio", pa.float64()),
        ("face_time_ratio", pa.float64()),
        ("music_energy", pa.float64()),
        ("daily_budget", pa.float64()),
        ("audience_size", pa.int64()),
        ("has_captions", pa.bool_()),
        ("has_voiceover", pa.bool_()),
        ("platform", pa.string()),
        ("objective", pa.string()),
        ("aspect_ratio", pa.string()),
        ("impressions", pa.int64()),
        ("clicks", pa.int64()),
        ("conversions", pa.int64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _table(*rows: dict) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=SCHEMA)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"clicks": None}, "null_target"),
        ({"impressions": None}, "null_target"),
        ({"impressions": -5}, "negative_counts"),
        ({"clicks": -1}, "negative_counts"),
        ({"conversions": -3}, "negative_counts"),
        ({"clicks": 1001}, "clicks_exceed_impressions"),
        ({"hook_strength": math.nan}, "non_finite_feature"),
        ({"daily_budget": math.inf}, "non_finite_feature"),
        ({"platform": "myspace"}, "unknown_category"),
        ({"aspect_ratio": "3:2"}, "unknown_category"),
        # Two problems: counted once, under the first reason in BAD_ROW_REASONS.
        ({"clicks": 2000, "platform": "myspace"}, "clicks_exceed_impressions"),
    ],
)
def test_each_bad_row_is_counted_under_its_reason_and_left_out(change: dict, reason: str) -> None:
    bad = {**GOOD_ROW, **change, "video_id": "bad"}
    result = screen_training_table(_table(GOOD_ROW, bad))
    assert result.rows_read == 2
    assert result.bad_rows == {r: int(r == reason) for r in BAD_ROW_REASONS}
    assert result.frame["video_id"].tolist() == ["v1"]


def test_good_row_becomes_the_expected_frame() -> None:
    frame = screen_training_table(_table(GOOD_ROW)).frame
    assert list(frame.columns) == [
        "video_id",
        *FEATURES,
        "impressions",
        "clicks",
        "roas_per_ctr",
        "created_at",
        TARGET,
    ]
    row = frame.iloc[0]
    assert row[TARGET] == pytest.approx(0.04)
    assert np.isnan(row["music_energy"])
    assert np.isnan(row["has_voiceover"])
    assert row["has_captions"] == 1.0
    assert row["scene_count"] == 4.0
    assert row["platform"] == "tiktok"


def test_null_category_is_missing_not_bad() -> None:
    result = screen_training_table(_table({**GOOD_ROW, "objective": None}))
    assert sum(result.bad_rows.values()) == 0
    assert pd.isna(result.frame["objective"].iloc[0])


def test_a_row_selection_refuses_a_threshold_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RowSelection(0)


def _scalar(db: Database, sql: str) -> int:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def test_loader_returns_the_clean_frame_and_the_planted_bad_rows(db: Database) -> None:
    spec = small_world()
    summary = populate(db, spec)
    data = load_training_frame(db, RowSelection(100))

    expected_rows = _scalar(
        db,
        "SELECT count(*) FROM videos WHERE impressions >= 100 AND clicks IS NOT NULL "
        "AND clicks >= 0 AND clicks <= impressions AND hook_strength <> 'NaN'::float8 "
        "AND platform IN ('tiktok','instagram','youtube','facebook','snapchat')",
    )
    below_threshold = _scalar(db, "SELECT count(*) FROM videos WHERE impressions BETWEEN 0 AND 99")
    assert below_threshold > 0  # the threshold really removes something
    assert len(data.frame) == expected_rows
    assert data.bad_rows == {r: summary.planted_bad_rows.get(r, 0) for r in BAD_ROW_REASONS}
    assert data.bad_row_total > 0
    assert data.rows_read == expected_rows + data.bad_row_total

    frame = data.frame
    assert frame["video_id"].is_unique
    for name, categories in CATEGORICAL_FEATURES.items():
        assert isinstance(frame[name].dtype, pd.CategoricalDtype)
        assert tuple(frame[name].cat.categories) == categories
    numeric = [f for f in FEATURES if f not in CATEGORICAL_FEATURES]
    assert all(frame[name].dtype == np.float64 for name in numeric)
    assert frame["impressions"].dtype == np.int64
    assert frame["clicks"].dtype == np.int64
    assert frame[TARGET].between(0, 1).all()
    assert (frame["impressions"] >= 100).all()
    # Missing features stay missing (NaN), they are not bad rows.
    assert frame["music_energy"].isna().sum() > 0


def test_counting_batch_by_batch_agrees_with_the_frame(db: Database) -> None:
    """What `real_training_data` describes without building the frame is what the training
    step then reads: kept rows, rows read, bad rows per reason and usable rows."""
    summary = populate(db, small_world())
    data = load_training_frame(db, RowSelection(100))
    usable = lambda ids: int(len(ids) - holdout_mask(ids).sum())  # noqa: E731
    counts = count_training_rows(db, RowSelection(100), usable)
    assert sum(summary.planted_bad_rows.values()) > 0  # the screening has work to do
    assert counts.rows == len(data.frame)
    assert counts.rows_read == data.rows_read
    assert counts.bad_rows == data.bad_rows
    assert counts.usable_rows == usable(data.frame["video_id"])
    assert 0 < counts.usable_rows < counts.rows


def test_a_higher_threshold_reads_fewer_rows(db: Database) -> None:
    populate(db, small_world())
    assert len(load_training_frame(db, RowSelection(5000)).frame) < len(
        load_training_frame(db, RowSelection(100)).frame
    )


def test_a_horizon_reads_the_videos_created_within_it_of_the_newest(db: Database) -> None:
    """Only videos created within `horizon_days` of the newest training row are read; a newer
    video below the impressions threshold does not move the horizon, nor does one dated
    after the database's clock (it is read), and a video without a creation time is still
    read (it counts as new)."""
    populate(db, small_world())  # ends on END, before the clock
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO videos (video_id, platform, objective, aspect_ratio, impressions, "
            "clicks, conversions, created_at) VALUES "
            "('too-few-impressions', 'tiktok', 'traffic', '9:16', 5, 0, 0, %s), "
            "('undated', 'tiktok', 'traffic', '9:16', 1000, 40, 2, NULL), "
            "('mistyped-year', 'tiktok', 'traffic', '9:16', 1000, 40, 2, now() + '36 years')",
            (END + timedelta(days=30),),
        )
    whole = load_training_frame(db, RowSelection(100)).frame
    dated = whole["created_at"].notna()
    real = dated & (whole["video_id"] != "mistyped-year")
    newest = whole.loc[real, "created_at"].max()
    assert newest <= pd.Timestamp(END)
    within = ~dated | (whole["created_at"] >= newest - pd.Timedelta(days=3))
    assert 0 < within.sum() < len(whole)  # the horizon leaves some videos out, not all

    selection = RowSelection(100, horizon_days=3.0)
    recent = load_training_frame(db, selection)
    assert sorted(recent.frame["video_id"]) == sorted(whole.loc[within, "video_id"])
    assert {"undated", "mistyped-year"} <= set(recent.frame["video_id"])
    usable = lambda ids: int(len(ids) - holdout_mask(ids).sum())  # noqa: E731
    counts = count_training_rows(db, selection, usable)
    assert (counts.rows, counts.rows_read, counts.bad_rows) == (
        len(recent.frame),
        recent.rows_read,
        recent.bad_rows,
    )


def test_a_horizon_counts_from_the_newest_when_every_video_is_dated_ahead(db: Database) -> None:
    """A world dated after the database's clock is read as it is: the newest counts."""
    populate(db, small_world(end=datetime.now(UTC) + timedelta(days=400)))
    whole = load_training_frame(db, RowSelection(100)).frame
    newest = whole["created_at"].max()
    recent = load_training_frame(db, RowSelection(100, horizon_days=3.0)).frame
    expected = whole["created_at"].isna() | (whole["created_at"] >= newest - pd.Timedelta(days=3))
    assert 0 < len(recent) == int(expected.sum()) < len(whole)


def test_the_horizon_follows_the_recency_settings() -> None:
    """7 half-lives of 2 days by default; no recency weights (or no horizon): every video."""
    assert RetrainSettings().row_selection() == RowSelection(100, 14.0)
    assert RetrainSettings(recency_half_life_days=1.0).row_selection().horizon_days == 7.0
    assert RetrainSettings(recency_half_life_days=0).row_selection().horizon_days is None
    assert RetrainSettings(recency_horizon_half_lives=None).row_selection().horizon_days is None
    with pytest.raises(ValueError, match="positive"):
        RowSelection(100, horizon_days=0.0)


def _many_rows(count: int, seed: int = 7) -> pa.Table:
    """`count` rows, mostly good, with every kind of bad row scattered among them."""
    rng = np.random.default_rng(seed)
    impressions = rng.integers(100, 10_000, count)
    clicks = (impressions * rng.uniform(0, 0.1, count)).astype(np.int64)
    hook = rng.uniform(0, 1, count)
    platform = rng.choice(list(CATEGORICAL_FEATURES["platform"]), count).astype(object)
    bad = rng.choice(count, size=count // 50, replace=False)
    kinds = np.array_split(bad, 4)
    clicks[kinds[0]] = impressions[kinds[0]] + 1
    hook[kinds[1]] = np.nan
    platform[kinds[2]] = "myspace"
    impressions[kinds[3]] = -1
    columns = {name: [GOOD_ROW[name]] * count for name in SCHEMA.names}
    columns.update(
        video_id=[f"v{i}" for i in range(count)],
        impressions=impressions,
        clicks=clicks,
        hook_strength=hook,
        platform=platform,
        music_energy=np.where(rng.uniform(size=count) < 0.1, np.nan, rng.uniform(size=count)),
        created_at=pa.array(
            datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1e6 + np.arange(count) * 1e6,
            pa.float64(),
        )
        .cast(pa.int64())
        .cast(pa.timestamp("us", tz="UTC")),
    )
    columns["music_energy"] = pa.array(columns["music_energy"], from_pandas=True)  # NaN -> NULL
    return pa.table(columns, schema=SCHEMA)


def test_batches_of_any_size_build_the_frame_pandas_would() -> None:
    table = _many_rows(150_000)  # more rows than a column's first capacity
    raw = table.to_pandas()
    good = raw[
        (raw["clicks"] <= raw["impressions"])
        & (raw["impressions"] >= 0)
        & raw["hook_strength"].notna()
        & raw["platform"].isin(CATEGORICAL_FEATURES["platform"])
    ]
    # Column room guessed right, far too high (10x: room never written to takes no memory,
    # but the address space is still reserved, so the guess stays within what any kernel
    # grants without overcommitting), too low and not at all.
    guesses = ((150_000, 150_000), (65_536, 1_500_000), (9_999, 20_000), (1, 0))
    for batch_rows, expected_rows in guesses:
        if batch_rows == 1:
            table = table.slice(0, 3_000)  # one row per batch: keep it short
            good = good[good["video_id"].isin(set(raw["video_id"][:3_000]))]
        batches = table.to_batches(max_chunksize=batch_rows)
        result = screen_training_batches(batches, expected_rows=expected_rows)
        frame = result.frame
        assert result.rows_read == table.num_rows
        assert result.bad_row_total == table.num_rows - len(good)
        assert frame["video_id"].tolist() == good["video_id"].tolist()
        for name in ("hook_strength", "music_energy", "impressions", "clicks"):
            np.testing.assert_array_equal(frame[name].to_numpy(), good[name].to_numpy())
        assert frame["platform"].astype(str).tolist() == good["platform"].tolist()
        assert (frame["created_at"].to_numpy() == good["created_at"].to_numpy()).all()


def test_roas_per_ctr_is_revenue_per_click_over_spend_per_impression() -> None:
    schema = SCHEMA.append(pa.field("spend", pa.float64())).append(
        pa.field("revenue", pa.float64())
    )
    rows = [
        {**GOOD_ROW, "video_id": "paid", "spend": 10.0, "revenue": 50.0},
        {**GOOD_ROW, "video_id": "no-click", "clicks": 0, "spend": 10.0, "revenue": 0.0},
        {**GOOD_ROW, "video_id": "no-spend", "spend": 0.0, "revenue": 5.0},
        {**GOOD_ROW, "video_id": "unknown", "spend": 10.0, "revenue": None},
    ]
    frame = screen_training_table(pa.Table.from_pylist(rows, schema=schema)).frame
    ratio = dict(zip(frame["video_id"], frame["roas_per_ctr"], strict=True))
    assert ratio["paid"] == pytest.approx(50.0 * 1000 / (40 * 10.0))  # ROAS 5 at CTR 0.04
    assert all(np.isnan(ratio[name]) for name in ("no-click", "no-spend", "unknown"))
