"""The live model's accuracy over a window, on hand-made rows whose figures are known."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from ctr_assets.data.accuracy import (
    AccuracyReport,
    Maturity,
    PlatformAccuracy,
    load_outcomes,
    measure_accuracy,
)
from ctr_assets.db.connection import Database

AS_OF = datetime(2026, 10, 10, tzinfo=UTC)
SINCE = AS_OF - timedelta(days=7)
IN_WINDOW = AS_OF - timedelta(days=3)
RESOLVED = AS_OF - timedelta(hours=1)
MODEL = "ctr-20261001T000000Z-aaaaaa"
OTHER_MODEL = "ctr-20260901T000000Z-bbbbbb"
EXACT = {"abs": 1e-12}


def _insert_videos(db: Database, platforms: dict[str, str | None]) -> None:
    with db.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO videos (video_id, platform) VALUES (%s, %s)", list(platforms.items())
        )


def _insert_predictions(db: Database, *rows: dict) -> None:
    defaults = {
        "model_version": MODEL,
        "predicted_at": IN_WINDOW,
        "resolved_at": RESOLVED,
        "predicted_roas": None,
        "actual_roas": None,
        "actual_impressions": 1000,
    }
    with db.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO prediction_records (video_id, model_version, predicted_ctr, "
            "actual_ctr, predicted_roas, actual_roas, predicted_at, resolved_at, "
            "actual_impressions) VALUES "
            "(%(video_id)s, %(model_version)s, %(predicted_ctr)s, %(actual_ctr)s, "
            "%(predicted_roas)s, %(actual_roas)s, %(predicted_at)s, %(resolved_at)s, "
            "%(actual_impressions)s)",
            [{**defaults, **row} for row in rows],
        )


# Four resolved predictions of MODEL inside the window:
#   video  platform  predicted  actual  error   predicted ROAS  actual ROAS
#   a      tiktok    0.05       0.04    +0.01   2.0             2.5
#   b      tiktok    0.03       0.05    -0.02   3.0             2.0
#   c      youtube   0.02       0.02     0.00   1.0             -
#   d      (no row)  0.06       0.03    +0.03   -               4.0
BASE_ROWS = (
    {
        "video_id": "a",
        "predicted_ctr": 0.05,
        "actual_ctr": 0.04,
        "predicted_roas": 2.0,
        "actual_roas": 2.5,
    },
    {
        "video_id": "b",
        "predicted_ctr": 0.03,
        "actual_ctr": 0.05,
        "predicted_roas": 3.0,
        "actual_roas": 2.0,
    },
    {"video_id": "c", "predicted_ctr": 0.02, "actual_ctr": 0.02, "predicted_roas": 1.0},
    {"video_id": "d", "predicted_ctr": 0.06, "actual_ctr": 0.03, "actual_roas": 4.0},
)


@pytest.fixture
def base_db(db: Database) -> Database:
    _insert_videos(db, {"a": "tiktok", "b": "tiktok", "c": "youtube"})
    _insert_predictions(db, *BASE_ROWS)
    return db


def test_figures_over_the_window_are_exactly_the_hand_computed_ones(base_db: Database) -> None:
    report = measure_accuracy(base_db, MODEL, AS_OF)

    assert report.model_version == MODEL
    assert report.as_of == AS_OF
    assert report.lookback_days == 7
    assert report.n_samples == 4
    # |errors| 0.01, 0.02, 0, 0.03
    assert report.mae == pytest.approx(0.06 / 4, **EXACT)
    # squared errors 0.0001 + 0.0004 + 0 + 0.0009 = 0.0014
    assert report.rmse == pytest.approx(math.sqrt(0.0014 / 4), **EXACT)
    # mean actual 0.035; SS_tot = 0.005² + 0.015² + 0.015² + 0.005² = 0.0005
    assert report.r2 == pytest.approx(1 - 0.0014 / 0.0005, **EXACT)  # -1.8
    assert report.mean_predicted_ctr == pytest.approx(0.04, **EXACT)
    assert report.mean_actual_ctr == pytest.approx(0.035, **EXACT)
    assert report.bias == pytest.approx(0.005, **EXACT)
    # ROAS from rows a and b only: 1 - (0.5 + 1.0) / (2.5 + 2.0)
    assert report.roas_samples == 2
    assert report.roas_accuracy == pytest.approx(1 - 1.5 / 4.5, **EXACT)
    assert report.roas_mae == pytest.approx(0.75, **EXACT)


def test_figures_are_per_platform_with_unknown_for_a_missing_video(base_db: Database) -> None:
    report = measure_accuracy(base_db, MODEL, AS_OF)

    assert [p.platform for p in report.by_platform] == ["tiktok", "unknown", "youtube"]
    tiktok, unknown, youtube = report.by_platform
    assert tiktok == PlatformAccuracy(
        "tiktok", 2, pytest.approx(0.015, **EXACT), pytest.approx(-0.005, **EXACT)
    )
    assert unknown == PlatformAccuracy(
        "unknown", 1, pytest.approx(0.03, **EXACT), pytest.approx(0.03, **EXACT)
    )
    assert youtube == PlatformAccuracy(
        "youtube", 1, pytest.approx(0.0, **EXACT), pytest.approx(0.0, **EXACT)
    )
    assert sum(p.n_samples for p in report.by_platform) == report.n_samples


def test_a_video_without_a_platform_counts_as_unknown(db: Database) -> None:
    _insert_videos(db, {"a": None, "b": "instagram"})
    _insert_predictions(
        db,
        {"video_id": "a", "predicted_ctr": 0.05, "actual_ctr": 0.03},
        {"video_id": "b", "predicted_ctr": 0.04, "actual_ctr": 0.04},
        {"video_id": "gone", "predicted_ctr": 0.01, "actual_ctr": 0.02},
    )
    report = measure_accuracy(db, MODEL, AS_OF)
    by_name = {p.platform: p for p in report.by_platform}
    assert set(by_name) == {"unknown", "instagram"}
    assert by_name["unknown"].n_samples == 2
    assert by_name["unknown"].mae == pytest.approx((0.02 + 0.01) / 2, **EXACT)
    assert by_name["instagram"].n_samples == 1


def test_the_platform_is_recorded_at_insert_or_looked_up_when_it_was_not(db: Database) -> None:
    # "early" is predicted before its video row exists: nothing to record, looked up later.
    _insert_predictions(db, {"video_id": "early", "predicted_ctr": 0.05, "actual_ctr": 0.03})
    _insert_videos(db, {"early": "snapchat", "late": "facebook"})
    _insert_predictions(db, {"video_id": "late", "predicted_ctr": 0.04, "actual_ctr": 0.04})
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT video_id, platform FROM prediction_records ORDER BY video_id")
        assert cur.fetchall() == [("early", None), ("late", "facebook")]
        # The platform at prediction time counts, not a later change of the video's row.
        cur.execute("UPDATE videos SET platform = 'youtube' WHERE video_id = 'late'")

    report = measure_accuracy(db, MODEL, AS_OF)

    by_name = {p.platform: p.n_samples for p in report.by_platform}
    assert by_name == {"snapchat": 1, "facebook": 1}


# Each of these rows has a large error, so counting it would move every figure.
EXCLUDED = {
    "other_model_version": {"model_version": OTHER_MODEL},
    "predicted_before_the_window": {"predicted_at": SINCE - timedelta(microseconds=1)},
    "predicted_at_as_of": {"predicted_at": AS_OF},
    "predicted_after_as_of": {"predicted_at": AS_OF + timedelta(days=1)},
    "unresolved": {"actual_ctr": None, "resolved_at": None},
    "resolved_after_as_of": {"resolved_at": AS_OF + timedelta(seconds=1)},
    "no_prediction": {"predicted_ctr": None},
    "no_impressions": {"actual_impressions": None},
    "zero_impressions": {"actual_impressions": 0},
    "immature_few_impressions": {"actual_impressions": 19},
    "ctr_above_one": {"actual_ctr": 1.5},
    "nan_prediction": {"predicted_ctr": float("nan")},
}


@pytest.mark.parametrize("overrides", EXCLUDED.values(), ids=EXCLUDED.keys())
def test_rows_outside_the_judgement_are_left_out(base_db: Database, overrides: dict) -> None:
    before = measure_accuracy(base_db, MODEL, AS_OF)
    _insert_videos(base_db, {"x": "tiktok"})
    row = {
        "video_id": "x",
        "predicted_ctr": 0.9,
        "actual_ctr": 0.01,
        "predicted_roas": 50.0,
        "actual_roas": 1.0,
    }
    _insert_predictions(base_db, {**row, **overrides})

    after = measure_accuracy(base_db, MODEL, AS_OF)

    assert {f: getattr(after, f) for f in FIGURES} == {f: getattr(before, f) for f in FIGURES}
    assert after.by_platform == before.by_platform
    assert after.n_samples == 4


@pytest.mark.parametrize(
    ("overrides", "counter"),
    [
        ({"actual_impressions": None}, "no_impressions_rows"),
        ({"actual_impressions": -3}, "no_impressions_rows"),
        ({"actual_impressions": 5}, "immature_rows"),
        ({"actual_ctr": 1.5}, "invalid_rows"),
        ({"predicted_ctr": float("nan")}, "invalid_rows"),
        ({"predicted_ctr": float("inf")}, "invalid_rows"),
    ],
)
def test_each_row_left_out_is_counted_under_its_kind(
    base_db: Database, overrides: dict, counter: str
) -> None:
    _insert_predictions(
        base_db, {"video_id": "x", "predicted_ctr": 0.9, "actual_ctr": 0.01, **overrides}
    )
    report = measure_accuracy(base_db, MODEL, AS_OF)
    counts = {
        "immature_rows": report.immature_rows,
        "no_impressions_rows": report.no_impressions_rows,
        "invalid_rows": report.bad_rows["invalid_ctr"],
    }
    assert counts == {name: int(name == counter) for name in counts}


def test_a_prediction_younger_than_the_maturity_age_waits(base_db: Database) -> None:
    young = AS_OF - timedelta(hours=5)
    _insert_predictions(
        base_db,
        {"video_id": "y", "predicted_ctr": 0.9, "actual_ctr": 0.01, "predicted_at": young},
    )
    assert measure_accuracy(base_db, MODEL, AS_OF).n_samples == 5
    strict = measure_accuracy(base_db, MODEL, AS_OF, maturity=Maturity(min_age_hours=6))
    assert (strict.n_samples, strict.immature_rows) == (4, 1)


def test_the_gate_reads_exactly_the_rows_the_figures_are_computed_on(base_db: Database) -> None:
    _insert_predictions(
        base_db,
        {"video_id": "i", "predicted_ctr": 0.5, "actual_ctr": 0.2, "actual_impressions": 3},
        {"video_id": "j", "predicted_ctr": 0.5, "actual_ctr": 2.0},
        {"video_id": "k", "predicted_ctr": 0.07, "actual_ctr": 0.05, "actual_impressions": 20},
    )
    report = measure_accuracy(base_db, MODEL, AS_OF)
    rows = load_outcomes(base_db, MODEL, AS_OF, SINCE)
    assert len(rows) == report.n_samples == 5
    assert float(rows.abs_error.mean()) == pytest.approx(report.mae, **EXACT)
    assert sorted(rows.impressions) == [20.0, 1000.0, 1000.0, 1000.0, 1000.0]


INCLUDED_AT_THE_EDGE = {
    "predicted_at_window_start": {"predicted_at": SINCE},
    "predicted_just_before_as_of": {"predicted_at": AS_OF - timedelta(microseconds=1)},
    "resolved_exactly_at_as_of": {"resolved_at": AS_OF},
}


@pytest.mark.parametrize("overrides", INCLUDED_AT_THE_EDGE.values(), ids=INCLUDED_AT_THE_EDGE)
def test_rows_at_the_edges_of_the_window_count(base_db: Database, overrides: dict) -> None:
    row = {"video_id": "x", "predicted_ctr": 0.10, "actual_ctr": 0.05}
    _insert_predictions(base_db, {**row, **overrides})

    report = measure_accuracy(base_db, MODEL, AS_OF)

    assert report.n_samples == 5
    assert report.mae == pytest.approx((0.06 + 0.05) / 5, **EXACT)


@pytest.mark.parametrize(("lookback_days", "expected_n"), [(1, 1), (2, 2), (7, 3), (30, 4)])
def test_lookback_days_sets_the_window(db: Database, lookback_days: int, expected_n: int) -> None:
    _insert_predictions(
        db,
        *(
            {
                "video_id": f"v{age}",
                "predicted_ctr": 0.05,
                "actual_ctr": 0.04,
                "predicted_at": AS_OF - timedelta(days=age, hours=12),
            }
            for age in (0, 1, 5, 20)
        ),
    )
    report = measure_accuracy(db, MODEL, AS_OF, lookback_days=lookback_days)
    assert report.n_samples == expected_n
    assert report.lookback_days == lookback_days


def test_only_the_given_model_version_counts(db: Database) -> None:
    _insert_predictions(
        db,
        {"video_id": "a", "predicted_ctr": 0.05, "actual_ctr": 0.04},
        {"video_id": "a", "model_version": OTHER_MODEL, "predicted_ctr": 0.2, "actual_ctr": 0.04},
        {"video_id": "b", "model_version": OTHER_MODEL, "predicted_ctr": 0.3, "actual_ctr": 0.04},
    )
    mine = measure_accuracy(db, MODEL, AS_OF)
    theirs = measure_accuracy(db, OTHER_MODEL, AS_OF)
    assert (mine.n_samples, theirs.n_samples) == (1, 2)
    assert mine.mae == pytest.approx(0.01, **EXACT)
    assert theirs.mae == pytest.approx((0.16 + 0.26) / 2, **EXACT)


def test_roas_figures_are_none_when_no_row_has_both_roas_values(db: Database) -> None:
    _insert_predictions(
        db,
        {"video_id": "a", "predicted_ctr": 0.05, "actual_ctr": 0.04, "predicted_roas": 2.0},
        {"video_id": "b", "predicted_ctr": 0.05, "actual_ctr": 0.04, "actual_roas": 3.0},
    )
    report = measure_accuracy(db, MODEL, AS_OF)
    assert report.n_samples == 2
    assert report.mae == pytest.approx(0.01, **EXACT)
    assert report.roas_samples == 0
    assert report.roas_accuracy is None
    assert report.roas_mae is None


FIGURES = (
    "mae",
    "rmse",
    "r2",
    "mean_predicted_ctr",
    "mean_actual_ctr",
    "bias",
    "roas_accuracy",
    "roas_mae",
)


def _assert_nothing_to_judge(report: AccuracyReport) -> None:
    assert {name: getattr(report, name) for name in FIGURES} == dict.fromkeys(FIGURES)
    assert report.n_samples == 0
    assert report.roas_samples == 0
    assert report.by_platform == ()


def test_with_no_rows_every_figure_is_none(db: Database) -> None:
    report = measure_accuracy(db, MODEL, AS_OF)
    _assert_nothing_to_judge(report)
    assert report.model_version == MODEL


def test_with_no_model_version_every_figure_is_none(base_db: Database) -> None:
    report = measure_accuracy(base_db, None, AS_OF)
    _assert_nothing_to_judge(report)
    assert report.model_version is None
    assert report.as_of == AS_OF


@pytest.mark.parametrize(
    "actual",
    [[0.04], [0.05, 0.05, 0.05], [0.0, 0.0], [0.04] * 6, [0.1] * 7],
    ids=["one_row", "three_equal", "all_zero", "six_at_0.04", "seven_at_0.1"],
)
def test_r2_is_none_when_every_actual_value_is_the_same(db: Database, actual: list[float]) -> None:
    predicted = [0.01 * (i + 1) for i in range(len(actual))]
    _insert_predictions(
        db,
        *(
            {"video_id": f"v{i}", "predicted_ctr": p, "actual_ctr": a}
            for i, (p, a) in enumerate(zip(predicted, actual, strict=True))
        ),
    )
    report = measure_accuracy(db, MODEL, AS_OF)
    assert report.n_samples == len(actual)
    expected_mae = sum(abs(p - a) for p, a in zip(predicted, actual, strict=True)) / len(actual)
    assert report.mae == pytest.approx(expected_mae, **EXACT)
    assert report.r2 is None, f"R² is undefined without spread in the outcomes, got {report.r2}"


@pytest.mark.parametrize("lookback_days", [0, -1])
def test_a_lookback_shorter_than_a_day_is_refused(lookback_days: int) -> None:
    unreachable = Database("postgresql://nobody@nowhere.invalid/none")  # refused before any query
    with pytest.raises(ValueError, match="lookback_days must be at least 1"):
        measure_accuracy(unreachable, MODEL, AS_OF, lookback_days=lookback_days)
