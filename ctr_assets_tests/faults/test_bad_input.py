"""Bad input at scale: Hypothesis writes the three input tables, the product reads them.

Rows with NULL in any column, extreme and negative counts, NaN and infinity, unknown and
unicode categories, strings full of SQL metacharacters, and duplicate deliveries go into a
real PostgreSQL; the training-frame loader, the accuracy query and the purchase sensor read
them. An oracle in plain Python, written from the screening rules of the README ("Reading
the data"), says what each must see: every bad row counted under its reason, nothing
crashing, and nothing bad in what the model learns from or is judged on.

One database for the module, emptied between examples; seeds fixed (`derandomize`), examples
bounded, so the run is the same everywhere and takes seconds.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import psycopg2
import psycopg2.extras
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctr_assets.data.accuracy import Maturity, measure_accuracy
from ctr_assets.data.features import (
    BOOLEAN_FEATURES,
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
)
from ctr_assets.data.training_frame import BAD_ROW_REASONS, RowSelection, load_training_frame
from ctr_assets.db.connection import Database
from ctr_assets.ml.training import TrainingParams, train_ctr_model
from ctr_assets.orchestration.automation_settings import AutomationSettings
from ctr_assets.orchestration.resources import CtrDatabase
from ctr_assets.orchestration.sensors import build_purchase_sensor
from ctr_assets_tests.conftest import _admin, _with_database

PROPERTY = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,  # the same examples on every machine and every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def module_db(pg_admin_url: str, template_database: str) -> Iterator[Database]:
    """One migrated database for the whole module; each example empties what it uses."""
    name = f"ctr_props_{uuid.uuid4().hex[:10]}"
    admin = _admin(pg_admin_url)
    admin.cursor().execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield Database(_with_database(pg_admin_url, name))
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


# --- values a careless or broken upstream service writes ------------------------------------

SQL_METACHARACTERS = (
    "'",
    "''",
    "'; DROP TABLE videos; --",
    "tiktok' OR '1'='1",
    "\\",
    "%s",
    "%(video_id)s",
    "$1",
    "$$tiktok$$",
    '"platform"',
    "/* */",
    "--",
    ";",
    "\n",
    "E'\\x74iktok'",
)
# PostgreSQL text holds any character but NUL; the writer would be refused first.
ANY_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12
) | st.sampled_from(SQL_METACHARACTERS)
INT4 = st.integers(-(2**31), 2**31 - 1)
INT8 = st.integers(-(2**63), 2**63 - 1)
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [math.nan, math.inf, -math.inf, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324, -0.0]
)


def _or_null(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.none() | strategy


@dataclass(frozen=True)
class Instant:
    """A timestamptz that Python's datetime cannot express: its SQL literal, and its
    microseconds since 1970 when a datetime64[us] column can hold it (else None)."""

    sql: str
    micros: int | None


def _micros(iso: str) -> int:
    return int(np.datetime64(iso, "us").astype(np.int64))


EXTREME_INSTANTS = (
    Instant("infinity", None),
    Instant("-infinity", None),
    Instant("294276-12-31 23:59:59+00", None),  # PostgreSQL's last; past datetime64[us]
    Instant("294247-01-01 00:00:00+00", None),  # the first instant the loader refuses
    Instant("294246-12-31 00:00:00+00", _micros("294246-12-31T00:00:00")),
    Instant("4713-01-01 00:00:00+00 BC", _micros("-4712-01-01T00:00:00")),
)
ANY_INSTANT = _or_null(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    )
    | st.sampled_from(EXTREME_INSTANTS)
)


def _sql_value(value: Any) -> Any:
    return value.sql if isinstance(value, Instant) else value


# --- videos -> the training frame ------------------------------------------------------------

VIDEO_COLUMNS = (
    "video_id",
    "platform",
    "objective",
    "duration_s",
    "hook_strength",
    "scene_count",
    "has_captions",
    "has_voiceover",
    "text_overlay_ratio",
    "face_time_ratio",
    "music_energy",
    "aspect_ratio",
    "daily_budget",
    "audience_size",
    "impressions",
    "clicks",
    "conversions",
    "spend",
    "revenue",
    "created_at",
    "updated_at",
)
GOOD_VIDEO = {
    "platform": "tiktok",
    "objective": "traffic",
    "duration_s": 15.0,
    "hook_strength": 0.7,
    "scene_count": 4,
    "has_captions": True,
    "has_voiceover": False,
    "text_overlay_ratio": 0.1,
    "face_time_ratio": 0.3,
    "music_energy": 0.5,
    "aspect_ratio": "9:16",
    "daily_budget": 25.0,
    "audience_size": 1_000_000,
    "impressions": 1000,
    "clicks": 40,
    "conversions": 2,
    "spend": 10.0,
    "revenue": 30.0,
    "created_at": datetime(2026, 10, 1, tzinfo=UTC),
    "updated_at": datetime(2026, 10, 2, tzinfo=UTC),
}
_FLOAT_COLUMNS = (
    "duration_s",
    "hook_strength",
    "text_overlay_ratio",
    "face_time_ratio",
    "music_energy",
    "daily_budget",
    "spend",
    "revenue",
)


def _category_values(known: tuple[str, ...]) -> st.SearchStrategy:
    near_misses = [v.upper() for v in known] + [f"{v} " for v in known] + ["", "unknown"]
    return _or_null(st.sampled_from(known) | st.sampled_from(near_misses) | ANY_TEXT)


def _count_values() -> st.SearchStrategy:
    return _or_null(
        st.integers(-3, 300)
        | st.sampled_from([0, 99, 100, 101, 2**53 + 1, 2**63 - 1, -(2**63)])
        | INT8
    )


BAD_VALUES: dict[str, st.SearchStrategy] = {
    **{name: _or_null(ANY_FLOAT) for name in _FLOAT_COLUMNS},
    "scene_count": _or_null(INT4),
    "audience_size": _or_null(INT8 | st.sampled_from([2**53 + 1, 2**63 - 1])),
    "has_captions": _or_null(st.booleans()),
    "has_voiceover": _or_null(st.booleans()),
    **{name: _category_values(known) for name, known in CATEGORICAL_FEATURES.items()},
    "impressions": _count_values(),
    "clicks": _count_values(),
    "conversions": _count_values(),
    "created_at": ANY_INSTANT,
    "updated_at": ANY_INSTANT,
}


@st.composite
def video_rows(draw: st.DrawFn, id_prefix: str = "") -> dict[str, Any]:
    """A good video with any set of its columns replaced by what a broken writer sends."""
    row = dict(GOOD_VIDEO)
    row["impressions"] = draw(st.integers(100, 5000))
    row["clicks"] = draw(st.integers(0, row["impressions"]))
    for column in draw(st.sets(st.sampled_from(sorted(BAD_VALUES)), max_size=5)):
        row[column] = draw(BAD_VALUES[column])
    # Few ids, so that deliveries of the same video (duplicates) are common.
    row["video_id"] = id_prefix + draw(st.sampled_from(["v1", "v2", "v3", "v4"]) | ANY_TEXT)
    return row


def _deliver_videos(db: Database, deliveries: list[dict[str, Any]], *, empty: bool = True) -> None:
    """As the owning service would: each delivery upserts its video (the last one wins)."""
    columns = ", ".join(VIDEO_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in VIDEO_COLUMNS if c != "video_id")
    statement = (
        f"INSERT INTO videos ({columns}) VALUES ({', '.join(['%s'] * len(VIDEO_COLUMNS))}) "
        f"ON CONFLICT (video_id) DO UPDATE SET {updates}"
    )
    with db.connect() as conn, conn.cursor() as cur:
        if empty:
            cur.execute("TRUNCATE videos")
        psycopg2.extras.execute_batch(
            cur, statement, [[_sql_value(row[c]) for c in VIDEO_COLUMNS] for row in deliveries]
        )


# The oracle: the README's rules, in the README's order, on the rows as delivered.
README_REASONS = (
    "null_target",
    "negative_counts",
    "clicks_exceed_impressions",
    "non_finite_feature",
    "unknown_category",
    "invalid_created_at",
)


def _bad_reason(row: dict[str, Any]) -> str | None:
    impressions, clicks, conversions = row["impressions"], row["clicks"], row["conversions"]
    if impressions is None or clicks is None:
        return "null_target"
    if impressions < 0 or clicks < 0 or (conversions is not None and conversions < 0):
        return "negative_counts"
    if clicks > impressions:
        return "clicks_exceed_impressions"
    if any(
        isinstance(row[name], float) and not math.isfinite(row[name]) for name in NUMERIC_FEATURES
    ):
        return "non_finite_feature"
    if any(
        row[name] is not None and row[name] not in known
        for name, known in CATEGORICAL_FEATURES.items()
    ):
        return "unknown_category"
    created = row["created_at"]
    if isinstance(created, Instant) and created.micros is None:
        return "invalid_created_at"
    return None


@dataclass(frozen=True)
class Screened:
    rows_read: int
    bad_rows: dict[str, int]
    kept: dict[str, dict[str, Any]]  # video_id -> row


def screen_like_the_readme(deliveries: list[dict[str, Any]], min_impressions: int) -> Screened:
    videos = {row["video_id"]: row for row in deliveries}  # the last delivery wins
    bad = dict.fromkeys(README_REASONS, 0)
    kept: dict[str, dict[str, Any]] = {}
    read = 0
    for video_id, row in videos.items():
        impressions = row["impressions"]
        if impressions is not None and 0 <= impressions < min_impressions:
            continue  # not yet informative: not read at all
        read += 1
        reason = _bad_reason(row)
        if reason is None:
            kept[video_id] = row
        else:
            bad[reason] += 1
    return Screened(read, bad, kept)


def _as_feature(value: Any) -> float:
    return math.nan if value is None else float(value)


def _created_micros(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, Instant):
        return value.micros
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _frame_rows(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    created = frame["created_at"].dt.tz_convert(None).to_numpy().astype("datetime64[us]")
    rows = {}
    for position, record in enumerate(frame.to_dict("records")):
        stamp = created[position]
        record["created_at"] = None if np.isnat(stamp) else int(stamp.astype(np.int64))
        rows[record["video_id"]] = record
    return rows


def _same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def assert_frame_is_the_oracles(frame: pd.DataFrame, expected: Screened) -> None:
    actual = _frame_rows(frame)
    assert sorted(actual) == sorted(expected.kept)
    for video_id, row in expected.kept.items():
        got = actual[video_id]
        for name in (*NUMERIC_FEATURES, *BOOLEAN_FEATURES):
            assert _same_float(got[name], _as_feature(row[name])), (video_id, name, got[name])
        for name in CATEGORICAL_FEATURES:
            value = got[name]
            assert (None if pd.isna(value) else value) == row[name], (video_id, name)
        assert (got["impressions"], got["clicks"]) == (row["impressions"], row["clicks"])
        assert got["ctr"] == pytest.approx(row["clicks"] / row["impressions"], rel=1e-15)
        assert got["created_at"] == _created_micros(row["created_at"]), video_id


def assert_nothing_bad_reaches_the_model(frame: pd.DataFrame, min_impressions: int) -> None:
    for name in (*NUMERIC_FEATURES, *BOOLEAN_FEATURES):
        values = frame[name].to_numpy()
        assert not np.isinf(values).any(), name  # a value or missing (NaN), never infinite
    for name, known in CATEGORICAL_FEATURES.items():
        assert set(frame[name].dropna().astype(str)) <= set(known), name
    assert frame["ctr"].between(0.0, 1.0).all()
    assert (frame["impressions"] >= min_impressions).all()
    # A creation time the driver wrapped around would land near the year -290,000.
    assert (frame["created_at"].dropna().dt.year >= -4712).all()  # PostgreSQL's earliest


def test_the_loader_knows_the_readme_reasons_in_the_readme_order() -> None:
    assert BAD_ROW_REASONS == README_REASONS


@PROPERTY
@given(
    deliveries=st.lists(video_rows(), min_size=1, max_size=25),
    min_impressions=st.sampled_from([1, 100, 101]) | st.integers(1, 10**6),
)
def test_every_bad_video_is_counted_under_its_reason_and_left_out(
    module_db: Database, deliveries: list[dict[str, Any]], min_impressions: int
) -> None:
    _deliver_videos(module_db, deliveries)

    data = load_training_frame(module_db, RowSelection(min_impressions))

    expected = screen_like_the_readme(deliveries, min_impressions)
    assert data.bad_rows == expected.bad_rows
    assert data.rows_read == expected.rows_read
    assert_frame_is_the_oracles(data.frame, expected)
    assert_nothing_bad_reaches_the_model(data.frame, min_impressions)


def _good_videos(count: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(3)
    platforms, objectives = CATEGORICAL_FEATURES["platform"], CATEGORICAL_FEATURES["objective"]
    rows = []
    for i in range(count):
        impressions = int(rng.integers(200, 5000))
        hook = float(rng.uniform())
        rows.append(
            {
                **GOOD_VIDEO,
                "video_id": f"good-{i:04d}",
                "platform": platforms[i % len(platforms)],
                "objective": objectives[i % len(objectives)],
                "hook_strength": hook,
                "duration_s": float(rng.uniform(5, 60)),
                "impressions": impressions,
                "clicks": int(rng.binomial(impressions, 0.01 + 0.05 * hook)),
                "created_at": datetime(2026, 10, 1, tzinfo=UTC) + timedelta(hours=i),
            }
        )
    return rows


GOOD_VIDEOS = _good_videos(300)
QUICK_TRAINING = TrainingParams(num_boost_round=15, early_stopping_rounds=5, nthread=1)


@pytest.fixture(scope="module")
def clean_model(module_db: Database) -> tuple[pd.DataFrame, bytes]:
    """The frame and model of the good videos alone."""
    _deliver_videos(module_db, GOOD_VIDEOS)
    frame = load_training_frame(module_db, RowSelection(100)).frame
    model = train_ctr_model(frame, QUICK_TRAINING)
    return frame, bytes(model.booster.save_raw(raw_format="json"))


FORCED_FAULTS: tuple[dict[str, Any], ...] = (
    {"clicks": None},
    {"impressions": -1},
    {"clicks": 10**6, "impressions": 500},
    {"hook_strength": math.nan},
    {"daily_budget": -math.inf},
    {"platform": "myspace"},
    {"aspect_ratio": "'; DROP TABLE videos; --"},
    {"created_at": EXTREME_INSTANTS[0]},
)


@st.composite
def bad_video_rows(draw: st.DrawFn) -> dict[str, Any]:
    """A video the screening must leave out: what Hypothesis drew, made bad if it was not."""
    row = draw(video_rows(id_prefix="bad-"))
    if _bad_reason(row) is None:
        row.update(draw(st.sampled_from(FORCED_FAULTS)))
    return row


@settings(PROPERTY, max_examples=10)
@given(bad=st.lists(bad_video_rows(), min_size=1, max_size=20))
def test_bad_videos_change_nothing_the_model_learns(
    module_db: Database, clean_model: tuple[pd.DataFrame, bytes], bad: list[dict[str, Any]]
) -> None:
    clean_frame, clean_bytes = clean_model
    _deliver_videos(module_db, GOOD_VIDEOS)
    _deliver_videos(module_db, bad, empty=False)

    data = load_training_frame(module_db, RowSelection(100))

    pd.testing.assert_frame_equal(data.frame, clean_frame)
    model = train_ctr_model(data.frame, QUICK_TRAINING)
    assert bytes(model.booster.save_raw(raw_format="json")) == clean_bytes
    expected = screen_like_the_readme(bad, 100)
    assert data.bad_rows == expected.bad_rows
    assert data.bad_row_total == sum(expected.bad_rows.values())


# --- prediction_records -> the accuracy the retrain gate judges --------------------------------

AS_OF = datetime(2026, 10, 10, tzinfo=UTC)
SINCE = AS_OF - timedelta(days=7)
CHAMPION = "ctr-20261001T000000Z-aaaaaa"
US = timedelta(microseconds=1)

IN_WINDOW_TIMES = st.datetimes(
    min_value=SINCE.replace(tzinfo=None), max_value=(AS_OF - US).replace(tzinfo=None)
).map(lambda moment: moment.replace(tzinfo=UTC))
PREDICTED_AT = st.one_of(
    IN_WINDOW_TIMES,
    st.sampled_from([SINCE, AS_OF - US, SINCE - US, AS_OF, AS_OF + timedelta(days=1)]),
    st.sampled_from(EXTREME_INSTANTS[:2]),
    st.none(),
)
RESOLVED_AT = st.one_of(
    st.just(AS_OF - timedelta(hours=1)),
    st.sampled_from([AS_OF, AS_OF + US, SINCE - timedelta(days=30)]),
    st.sampled_from(EXTREME_INSTANTS[:2]),
    st.none(),
)
RATE = st.floats(0.0, 1.0) | st.sampled_from([0.0, 1.0, 0.02, 5e-324])
NOT_A_RATE = st.sampled_from(
    [math.nan, math.inf, -math.inf, -0.01, 1.0000001, 2.0, 1e308, -1e308, -5e-324]
)
ROAS = st.floats(0.0, 50.0) | st.sampled_from([0.0, 1e6])
NOT_A_ROAS = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 1e6 + 1, 1e308, -5e-324])
VIDEO_IDS = st.sampled_from(["a", "b", "c", "gone"]) | st.none() | ANY_TEXT


@st.composite
def prediction_rows(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "video_id": draw(VIDEO_IDS),
        "model_version": draw(
            st.sampled_from([CHAMPION, CHAMPION, CHAMPION, "ctr-other"]) | st.none() | ANY_TEXT
        ),
        "predicted_ctr": draw(_or_null(RATE | NOT_A_RATE)),
        "actual_ctr": draw(_or_null(RATE | NOT_A_RATE)),
        "actual_impressions": draw(_or_null(INT8)),
        "predicted_roas": draw(_or_null(ROAS | NOT_A_ROAS)),
        "actual_roas": draw(_or_null(ROAS | NOT_A_ROAS)),
        "predicted_at": draw(PREDICTED_AT),
        "resolved_at": draw(RESOLVED_AT),
    }


PREDICTION_COLUMNS = (
    "video_id",
    "model_version",
    "predicted_ctr",
    "actual_ctr",
    "actual_impressions",
    "predicted_roas",
    "actual_roas",
    "predicted_at",
    "resolved_at",
)


def _deliver_predictions(
    db: Database, platforms: dict[str, str | None], rows: list[dict[str, Any]]
) -> None:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE videos, prediction_records")
        psycopg2.extras.execute_batch(
            cur, "INSERT INTO videos (video_id, platform) VALUES (%s, %s)", list(platforms.items())
        )
        psycopg2.extras.execute_batch(
            cur,
            f"INSERT INTO prediction_records ({', '.join(PREDICTION_COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(PREDICTION_COLUMNS))})",
            [[_sql_value(row[c]) for c in PREDICTION_COLUMNS] for row in rows],
        )


def _finite_within(value: float | None, low: float, high: float) -> bool:
    return value is not None and low <= value <= high  # False for NaN


def _comparable(value: Any) -> datetime | None:
    """A time as the window compares it; ±infinity as the far past or future."""
    if isinstance(value, Instant):
        return (
            datetime.max.replace(tzinfo=UTC)
            if value.sql == "infinity"
            else datetime.min.replace(tzinfo=UTC)
        )
    return value


@dataclass
class ExpectedAccuracy:
    judged: list[dict[str, Any]]
    bad_rows: dict[str, int]


MIN_OUTCOME_IMPRESSIONS = Maturity().min_impressions


def judge_like_the_readme(rows: list[dict[str, Any]]) -> ExpectedAccuracy:
    """Resolved champion predictions in [as_of - 7 days, as_of) whose outcome was known by
    as_of are judged when both CTRs are rates and the outcome is mature (at least 20
    impressions); a ROAS pair counts when both are in [0, 1e6]. Rows that fail are
    counted, per reason."""
    judged: list[dict[str, Any]] = []
    bad = {"invalid_ctr": 0, "invalid_roas": 0}
    for row in rows:
        predicted_at, resolved_at = (
            _comparable(row["predicted_at"]),
            _comparable(row["resolved_at"]),
        )
        in_window = (
            row["model_version"] == CHAMPION
            and predicted_at is not None
            and SINCE <= predicted_at < AS_OF
            and row["actual_ctr"] is not None
            and resolved_at is not None
            and resolved_at <= AS_OF
            and row["predicted_ctr"] is not None
        )
        if not in_window:
            continue
        if not (
            _finite_within(row["predicted_ctr"], 0, 1) and _finite_within(row["actual_ctr"], 0, 1)
        ):
            bad["invalid_ctr"] += 1
            continue
        impressions = row["actual_impressions"]
        if impressions is None or impressions <= 0 or impressions < MIN_OUTCOME_IMPRESSIONS:
            continue  # no impressions to know its noise by, or immature: not judged
        roas = [row["predicted_roas"], row["actual_roas"]]
        roas_ok = all(value is None or _finite_within(value, 0, 1e6) for value in roas)
        if not roas_ok:
            bad["invalid_roas"] += 1
        judged.append({**row, "roas_pair": roas_ok and None not in roas})
    return ExpectedAccuracy(judged, bad)


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def assert_accuracy_is_the_oracles(report, expected: ExpectedAccuracy, platforms) -> None:
    rows = expected.judged
    assert report.bad_rows == expected.bad_rows
    assert report.n_samples == len(rows)
    figures = (report.mae, report.rmse, report.mean_predicted_ctr, report.mean_actual_ctr)
    if not rows:
        assert figures == (None, None, None, None)
        assert report.r2 is None
        assert (report.roas_samples, report.roas_accuracy, report.by_platform) == (0, None, ())
        return
    predicted = [row["predicted_ctr"] for row in rows]
    actual = [row["actual_ctr"] for row in rows]
    errors = [p - a for p, a in zip(predicted, actual, strict=True)]
    close = {"rel": 1e-9, "abs": 1e-12}
    assert report.mae == pytest.approx(_mean([abs(e) for e in errors]), **close)
    assert report.rmse == pytest.approx(math.sqrt(_mean([e * e for e in errors])), **close)
    assert report.mean_predicted_ctr == pytest.approx(_mean(predicted), **close)
    assert report.mean_actual_ctr == pytest.approx(_mean(actual), **close)
    mean_actual = _mean(actual)
    ss_tot = math.fsum((a - mean_actual) ** 2 for a in actual)
    if len(set(actual)) == 1:
        assert report.r2 is None  # no spread in the outcomes: undefined, not 0
    elif ss_tot / len(actual) > 1e-12:  # well conditioned: the figure itself must agree
        ss_res = math.fsum(e * e for e in errors)
        assert report.r2 == pytest.approx(1 - ss_res / ss_tot, rel=1e-6, abs=1e-9)
    else:
        assert report.r2 is None or not math.isnan(report.r2)
    pairs = [row for row in rows if row["roas_pair"]]
    assert report.roas_samples == len(pairs)
    actual_roas = math.fsum(row["actual_roas"] for row in pairs)
    if pairs and actual_roas:
        ratio = math.fsum(abs(row["predicted_roas"] - row["actual_roas"]) for row in pairs)
        ratio /= actual_roas
        assert report.roas_accuracy == pytest.approx(1 - ratio, rel=1e-9, abs=1e-9 * max(1, ratio))
    else:
        assert report.roas_accuracy is None
    by_platform: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        platform = platforms.get(row["video_id"]) if row["video_id"] is not None else None
        by_platform.setdefault(platform if platform is not None else "unknown", []).append(row)
    got = {p.platform: p for p in report.by_platform}
    assert sorted(got) == sorted(by_platform)
    for name, members in by_platform.items():
        assert got[name].n_samples == len(members)
        assert got[name].mae == pytest.approx(
            _mean([abs(r["predicted_ctr"] - r["actual_ctr"]) for r in members]), **close
        )
    counts = [p.n_samples for p in report.by_platform]
    assert counts == sorted(counts, reverse=True)


@PROPERTY
@given(
    rows=st.lists(prediction_rows(), max_size=30).flatmap(
        # Duplicate deliveries: some rows arrive twice.
        lambda rows: (
            st.lists(st.sampled_from(rows), max_size=5).map(lambda again: rows + again)
            if rows
            else st.just(rows)
        )
    ),
    platforms=st.fixed_dictionaries(
        {},
        optional={
            "a": _or_null(_category_values(CATEGORICAL_FEATURES["platform"])),
            "b": _or_null(_category_values(CATEGORICAL_FEATURES["platform"])),
            "c": st.just("unknown"),
        },
    ),
)
def test_the_accuracy_judges_only_real_rates_and_counts_the_rest(
    module_db: Database, rows: list[dict[str, Any]], platforms: dict[str, str | None]
) -> None:
    _deliver_predictions(module_db, platforms, rows)

    report = measure_accuracy(module_db, CHAMPION, AS_OF)

    assert_accuracy_is_the_oracles(report, judge_like_the_readme(rows), platforms)
    for figure in (report.mae, report.rmse, report.mean_predicted_ctr, report.roas_accuracy):
        assert figure is None or math.isfinite(figure)


# --- purchase_signals -> the purchase sensor ---------------------------------------------------

PURCHASE_SENSOR = build_purchase_sensor(AutomationSettings())
AMOUNTS = _or_null(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=2, min_value=-(10**6), max_value=10**6
    )
    | st.sampled_from([Decimal("NaN"), Decimal("1e300"), Decimal("-1e300"), Decimal("0")])
)


@st.composite
def purchase_rows(draw: st.DrawFn) -> dict[str, Any]:
    return {
        # Few ids, so that duplicate deliveries are common; NULL cannot be deduplicated.
        "transaction_id": draw(_or_null(st.sampled_from(["t1", "t2", "t3"]) | ANY_TEXT)),
        "video_id": draw(_or_null(ANY_TEXT)),
        "amount": draw(AMOUNTS),
        "currency": draw(_or_null(st.sampled_from(["USD", "EUR"]) | ANY_TEXT)),
        "occurred_at": draw(ANY_INSTANT),
    }


@pytest.fixture(scope="module")
def sensor_instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def _tick(instance: dg.DagsterInstance, db: Database, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"database": CtrDatabase(url=db.url)}
    )
    return PURCHASE_SENSOR(context), context.cursor


def _tick_until_counted(instance, db, cursor, expected: int, seconds: float = 20.0):
    """Ticks until `expected` signals are counted (another session on the shared server may
    hold the horizon for a moment); returns the counts seen and the cursor."""
    counted: list[int] = []
    deadline = time.monotonic() + seconds
    while sum(counted) < expected and time.monotonic() < deadline:
        result, cursor = _tick(instance, db, cursor)
        if isinstance(result, dg.RunRequest):
            counted.append(int(result.tags["ctr_assets/purchases"]))
        else:
            time.sleep(0.1)
    return counted, cursor


@settings(PROPERTY, max_examples=40)
@given(deliveries=st.lists(st.lists(purchase_rows(), max_size=8), min_size=1, max_size=4))
def test_the_purchase_sensor_counts_every_signal_once_whatever_it_holds(
    module_db: Database,
    sensor_instance: dg.DagsterInstance,
    deliveries: list[list[dict[str, Any]]],
) -> None:
    with module_db.connect() as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE purchase_signals")
    first, cursor = _tick(sensor_instance, module_db, None)
    assert isinstance(first, dg.SkipReason)

    seen: set[str] = set()
    expected = 0
    for delivery in deliveries:  # each delivery is one transaction of the writing service
        with module_db.connect() as conn, conn.cursor() as cur:
            for row in delivery:
                cur.execute(
                    "INSERT INTO purchase_signals (transaction_id, video_id, amount, currency, "
                    "occurred_at) VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (transaction_id) DO NOTHING",
                    [
                        _sql_value(row[c])
                        for c in ("transaction_id", "video_id", "amount", "currency", "occurred_at")
                    ],
                )
                new = row["transaction_id"] is None or row["transaction_id"] not in seen
                expected += new
                if row["transaction_id"] is not None:
                    seen.add(row["transaction_id"])

    counted, cursor = _tick_until_counted(sensor_instance, module_db, cursor, expected)
    assert sum(counted) == expected
    again, _ = _tick(sensor_instance, module_db, cursor)
    assert isinstance(again, dg.SkipReason)  # nothing is counted twice
    assert "no new purchase signals" in (again.skip_message or "")
    assert json.loads(cursor)  # the cursor stays readable
