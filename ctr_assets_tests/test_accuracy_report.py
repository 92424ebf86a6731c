"""The accuracy report on hand-made histories in a real PostgreSQL: empty, one day, no
ROAS, a failed check; its figures against the accuracy the gate reads."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest

from ctr_assets.data.accuracy import measure_accuracy
from ctr_assets.db.connection import Database
from ctr_assets.reporting.accuracy_report import build_report, default_last_day
from ctr_assets.reporting.figures import Figure, Target, figure
from ctr_assets.reporting.history import Period, day_judged
from ctr_assets.reporting.html import render_html
from ctr_assets_tests.report_histories import add_check, add_model, add_predictions, midnight
from ctr_assets_tests.report_page import assert_page_shows_json

LAST_DAY = date(2026, 10, 31)
PERIOD = Period.ending(LAST_DAY, 30)


def _report(db: Database, period: Period = PERIOD) -> tuple[dict, str]:
    """The report's JSON and its page, checked against each other."""
    document = build_report(db, period, now=midnight(period.last_day + timedelta(days=1)))
    values = document.as_json_dict()
    page = render_html(values)
    assert_page_shows_json(page, values)
    return values, page


@pytest.mark.parametrize(
    ("target", "value", "lower", "upper", "verdict"),
    [
        (Target(0.02, above=False), 0.015, None, None, "met"),
        (Target(0.02, above=False), 0.025, None, None, "missed"),
        (Target(0.02, above=False), 0.025, 0.004, 0.012, "met"),  # noisy, truly under
        (Target(0.02, above=False), 0.030, 0.021, 0.035, "missed"),
        (Target(0.02, above=False), 0.020, 0.015, 0.025, "undecided"),
        (Target(0.02, above=False), 0.010, 0.0, None, "undecided"),  # no upper bound
        (Target(0.85, above=True, percent=True), 0.9, None, None, "met"),
        (Target(0.85, above=True, percent=True), 0.5, None, None, "missed"),
    ],
)
def test_a_target_is_met_only_when_the_whole_interval_is_on_its_side(
    target: Target, value: float, lower: float | None, upper: float | None, verdict: str
) -> None:
    assert target.verdict(value, lower, upper) == verdict


def test_an_unknown_figure_says_why_and_is_never_a_number() -> None:
    assert figure(None, "no outcome yet", Target(0.88, above=True)) == Figure(
        None, "no outcome yet", target="above 0.88"
    )
    assert figure(math.nan, "undefined").value is None
    with pytest.raises(ValueError, match="say why"):
        Figure(None)


def test_a_check_as_of_midnight_judges_the_day_that_ended() -> None:
    assert day_judged(midnight(date(2026, 11, 5))) == date(2026, 11, 4)
    assert day_judged(midnight(date(2026, 11, 5)) + timedelta(hours=2)) == date(2026, 11, 5)
    assert Period.ending(LAST_DAY, 30).first_day == date(2026, 10, 2)


def test_empty_database_says_what_is_missing_in_words(db: Database) -> None:
    values, page = _report(db)

    assert values["period"] == {"first_day": "2026-10-02", "last_day": "2026-10-31", "days": 30}
    for name, shown in values["accuracy"]["headline"].items():
        if name in ("n_samples", "roas_samples"):
            assert shown["value"] == 0  # a count: none is a known 0
        else:
            assert shown["value"] is None, name
            assert shown["missing"], name
    assert values["champion"] is None
    assert any("No prediction has been recorded yet" in n for n in values["notes"])
    assert any("No champion yet" in n for n in values["notes"])
    assert [d["note"] for d in values["accuracy"]["daily"]] == ["no check"] * 30
    reliability = values["reliability"]
    assert reliability["checks"]["value"] == 0
    assert reliability["retrain_success_rate"]["missing"] == (
        "no check set out to train a challenger in the period"
    )
    assert values["ranking"]["top_decile_ctr_lift"]["value"] is None
    assert "No champion yet" in page
    assert '<figure class="chart"' not in page  # no chart drawn from nothing
    assert page.count("data-chart-missing") == 5


def test_one_day_of_history(db: Database) -> None:
    true_mae = add_predictions(db, LAST_DAY, 300, model_version="model-a", seed=1)
    add_model(db, "model-a", midnight(LAST_DAY - timedelta(days=1)), None)
    add_check(db, LAST_DAY)

    values, page = _report(db)

    assert "only 1 of the 30 days have predictions" in " ".join(values["notes"])
    daily = values["accuracy"]["daily"]
    assert [d["day"] for d in daily if d["checks"]] == ["2026-10-31"]
    assert sum(d["note"] == "no check" for d in daily) == 29
    assert values["accuracy"]["days_without_check"][0] == "2026-10-02"
    headline = values["accuracy"]["headline"]
    assert headline["n_samples"]["value"] == 300
    mae = headline["ctr_mae"]
    assert mae["lower"] <= true_mae <= mae["upper"] < 0.02
    assert mae["verdict"] == "met"
    assert headline["ctr_mae_latest"]["value"] == pytest.approx(0.0051)
    assert values["champion"] == "model-a"
    assert '<figure class="chart" data-chart="daily-mae">' in page


def test_each_day_says_why_it_has_no_figure(db: Database) -> None:
    add_check(
        db,
        LAST_DAY - timedelta(days=3),
        status="retrained",
        reason="no champion yet",
        champion_before=None,
        mae=None,
        n_samples=None,
    )
    add_check(db, LAST_DAY - timedelta(days=2), status="insufficient_data", mae=None, n_samples=0)
    add_check(db, LAST_DAY - timedelta(days=1), status="insufficient_data", mae=0.03, n_samples=12)
    add_check(db, LAST_DAY, status="insufficient_data", mae=0.03, n_samples=900)

    values, _ = _report(db)

    notes = [d["note"] for d in values["accuracy"]["daily"][-5:]]
    assert notes == [
        "no check",
        "no champion yet",
        "not judged: 0 judged predictions of the champion in its window (50 needed)",
        "not judged: 12 judged predictions of the champion in its window (50 needed)",
        "the gate said retrain, but there were too few training rows",
    ]
    latest = values["accuracy"]["headline"]["ctr_mae_latest"]
    assert latest["value"] == pytest.approx(0.03)  # 900 judged: the champion was judged
    assert values["accuracy"]["latest_day"] == "2026-10-31"


def test_without_roas_the_roas_figures_say_so(db: Database) -> None:
    for offset in range(3):
        add_predictions(db, LAST_DAY - timedelta(days=offset), 80, seed=offset, roas=False)

    values, page = _report(db)

    roas = values["accuracy"]["headline"]["roas_accuracy"]
    assert roas["value"] is None
    assert roas["missing"] == (
        "no judged prediction in the period carries both a predicted and an actual ROAS"
    )
    assert values["accuracy"]["headline"]["roas_samples"]["value"] == 0
    ranking = values["ranking"]
    assert ranking["top_decile_ctr_lift"]["value"] > 1.5  # the ranking still shows
    assert ranking["top_decile_roas_lift"]["missing"] == (
        "no judged outcome of the period carries an actual ROAS"
    )
    assert all(d["observed_roas"] is None for d in ranking["deciles"])
    assert roas["missing"] in page


def test_a_failed_check_is_counted_with_its_reason(db: Database) -> None:
    add_predictions(db, LAST_DAY - timedelta(days=3), 120, model_version="model-a")
    add_check(db, LAST_DAY - timedelta(days=3), status="retrained", training_seconds=2.0)
    add_check(
        db,
        LAST_DAY - timedelta(days=2),
        status="rejected",
        trigger="purchase_signals",
        training_seconds=3.0,
    )
    failed_training = "over threshold; the retrain failed: Invalid Parameter max_depth=-1"
    add_check(
        db,
        LAST_DAY - timedelta(days=1),
        status="error",
        trigger="manual",
        reason=failed_training,
        views={"noise_aware": "retrain", "naive": "retrain"},
    )
    died = "the check run 1f2e failed before it recorded a decision: killed by signal 9"
    add_check(db, LAST_DAY, status="error", reason=died, mae=None, n_samples=None, views={})

    values, page = _report(db)

    reliability = values["reliability"]
    assert [e["reason"] for e in reliability["errors"]] == [failed_training, died]
    assert reliability["errors"][1]["day"] == "2026-10-31"
    # The run that died before deciding is an error, not a retrain that failed.
    assert reliability["retrain_success_rate"]["value"] == pytest.approx(2 / 3)
    assert reliability["median_training_seconds"]["value"] == pytest.approx(2.5)
    assert reliability["worst_training_seconds"]["value"] == pytest.approx(3.0)
    assert reliability["by_trigger"]["manual"]["error"] == 1
    assert reliability["by_status"] == {
        "no_retrain_needed": 0,
        "retrained": 1,
        "insufficient_data": 0,
        "rejected": 1,
        "error": 2,
    }
    assert [t["status"] for t in values["learning"]["trainings"]] == [
        "retrained",
        "rejected",
        "error",
    ]
    assert values["accuracy"]["daily"][-1]["note"] == (
        "the check failed before it judged the champion (see Errors)"
    )
    assert "max_depth=-1" in page
    assert "killed by signal 9" in page


def test_period_figures_are_the_gates_own_over_one_model(db: Database) -> None:
    """Over a period one model served, the report's figures are `measure_accuracy`'s: the
    same rows judged (immature and invalid ones left out) and the same arithmetic."""
    for offset in range(5):
        add_predictions(db, LAST_DAY - timedelta(days=offset), 60, model_version="m", seed=offset)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(  # immature (10 impressions) and invalid (a CTR above 1) rows
            "UPDATE prediction_records SET actual_impressions = 10 WHERE id % 17 = 0;"
            "UPDATE prediction_records SET actual_ctr = 1.5 WHERE id % 23 = 0"
        )

    values, _ = _report(db)
    gate = measure_accuracy(db, "m", PERIOD.end, lookback_days=30)

    headline = values["accuracy"]["headline"]
    assert headline["n_samples"]["value"] == gate.n_samples < 300
    assert headline["ctr_mae"]["value"] == pytest.approx(gate.mae, rel=1e-9)
    assert headline["r2"]["value"] == pytest.approx(gate.r2, rel=1e-9)
    assert headline["roas_accuracy"]["value"] == pytest.approx(gate.roas_accuracy, rel=1e-9)
    assert headline["roas_samples"]["value"] == gate.roas_samples
    by_platform = {p["name"]: p["figures"] for p in values["accuracy"]["by_platform"]}
    for platform in gate.by_platform:
        assert by_platform[platform.platform]["n_samples"] == platform.n_samples
        assert by_platform[platform.platform]["mae"]["value"] == pytest.approx(platform.mae)


def test_deciles_pool_clicks_over_impressions(db: Database) -> None:
    add_predictions(db, LAST_DAY, 250, seed=5)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT predicted_ctr, actual_ctr, actual_impressions FROM prediction_records "
            "ORDER BY predicted_ctr, id"
        )
        predicted, observed, impressions = np.array(cur.fetchall(), dtype=float).T

    values, _ = _report(db)

    groups = np.array_split(np.arange(250), 10)  # ntile: the first groups take the extra
    deciles = values["ranking"]["deciles"]
    assert [d["n_samples"] for d in deciles] == [len(g) for g in groups]
    for row, rows in zip(deciles, groups, strict=True):
        clicks = (observed[rows] * impressions[rows]).sum()
        assert row["observed_ctr"] == pytest.approx(clicks / impressions[rows].sum())
        assert row["mean_predicted_ctr"] == pytest.approx(predicted[rows].mean())
    overall = (observed * impressions).sum() / impressions.sum()
    top = deciles[-1]["observed_ctr"]
    assert values["ranking"]["top_decile_ctr_lift"]["value"] == pytest.approx(top / overall)


def test_the_default_period_ends_today_only_once_a_check_judged_it(db: Database) -> None:
    today = date(2026, 11, 20)
    now = midnight(today) + timedelta(hours=10)
    assert default_last_day(db, now) == today - timedelta(days=1)
    add_check(db, today - timedelta(days=1))  # as of today's midnight: judges yesterday
    assert default_last_day(db, now) == today - timedelta(days=1)
    add_check(db, today)  # a check of today (as of tomorrow's midnight, in this history)
    assert default_last_day(db, now) == today
