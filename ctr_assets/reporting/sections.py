"""The accuracy and learning sections of the report, built from the tables of one period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ctr_assets.db.connection import Database
from ctr_assets.reporting import history
from ctr_assets.reporting.figures import Figure, ReportSettings, Target, figure
from ctr_assets.reporting.history import LiveOutcomes, Period, Week, day_judged
from ctr_assets.reporting.live_figures import LiveFigures, live_figures
from ctr_assets.retraining.backtest import serving_model

# Accuracy over the period.


@dataclass(frozen=True)
class DayRow:
    """One day: the last check that judged it, or why there is no figure."""

    day: date
    checks: int
    status: str | None
    champion: str | None
    n_samples: int | None
    mae: float | None
    mae_lower_bound: float | None
    mae_upper_bound: float | None
    noise_mae: float | None
    note: str | None  # words when the day has no figure


@dataclass(frozen=True)
class GroupRow:
    name: str
    figures: LiveFigures
    predictions: int | None = None  # models: every prediction made, judged or not
    first_day: date | None = None  # models: the days of their first and last prediction
    last_day: date | None = None


@dataclass(frozen=True)
class AccuracySection:
    headline: dict[str, Figure]
    latest_day: date | None  # the day of the latest judged check
    latest_champion: str | None
    daily: list[DayRow]
    days_without_check: list[date]
    by_platform: list[GroupRow]
    by_model: list[GroupRow]


def _judged(record: dict[str, Any], min_samples: int) -> bool:
    """Whether the check judged the champion: it had an MAE over enough predictions."""
    return record.get("mae") is not None and (record.get("n_samples") or 0) >= min_samples


def _day_row(day: date, records: list[dict[str, Any]], min_samples: int) -> DayRow:
    if not records:
        return DayRow(day, 0, None, None, None, None, None, None, None, "no check")
    last = records[-1]
    note = None
    if last.get("mae") is None and last["status"] == "error":
        note = "the check failed before it judged the champion (see Errors)"
    elif last.get("champion_before") is None:
        note = "no champion yet"
    elif not _judged(last, min_samples):
        note = (
            f"not judged: {last.get('n_samples') or 0} judged predictions of the "
            f"champion in its window ({min_samples} needed)"
        )
    elif last["status"] == "insufficient_data":
        note = "the gate said retrain, but there were too few training rows"
    return DayRow(
        day=day,
        checks=len(records),
        status=last["status"],
        champion=last.get("champion_before"),
        n_samples=last.get("n_samples"),
        mae=last.get("mae"),
        mae_lower_bound=last.get("mae_lower_bound"),
        mae_upper_bound=last.get("mae_upper_bound"),
        noise_mae=last.get("noise_mae"),
        note=note,
    )


def accuracy_section(
    db: Database, period: Period, settings: ReportSettings, records: list[dict[str, Any]]
) -> AccuracySection:
    live = history.judged_outcomes(db, period.start, period.end, settings.maturity)
    overall = live_figures(live, settings, "in the period")
    by_day = history.records_by_day(records)
    daily = [_day_row(day, by_day.get(day, []), settings.min_samples) for day in period.dates()]
    judged = [r for r in records if _judged(r, settings.min_samples)]
    latest = judged[-1] if judged else None
    if latest is not None:
        latest_mae = figure(
            latest["mae"],
            "",
            Target(settings.mae_threshold, above=False),
            latest.get("mae_lower_bound"),
            latest.get("mae_upper_bound"),
        )
    elif not records:
        latest_mae = figure(None, "no retrain check judged any day of the period")
    elif all(r.get("champion_before") is None for r in records):
        latest_mae = figure(None, "no champion was judged: there was none yet at each check")
    else:
        latest_mae = figure(
            None,
            f"no check had {settings.min_samples} judged predictions of the champion to "
            "judge it by",
        )
    platforms = sorted(set(live.platform))
    spans = history.model_spans(db, period)
    return AccuracySection(
        headline={
            "ctr_mae": overall.mae,
            "ctr_mae_latest": latest_mae,
            "noise_mae": overall.noise_mae,
            "r2": overall.r2,
            "roas_accuracy": overall.roas_accuracy,
            "n_samples": figure(overall.n_samples, ""),
            "roas_samples": figure(overall.roas_samples, ""),
        },
        latest_day=history.record_day(latest) if latest else None,
        latest_champion=latest.get("champion_before") if latest else None,
        daily=daily,
        days_without_check=[row.day for row in daily if row.checks == 0],
        by_platform=[
            GroupRow(name, live_figures(live.subset(live.platform == name), settings, f"on {name}"))
            for name in platforms
        ],
        by_model=[
            GroupRow(
                version,
                live_figures(live.subset(live.model_version == version), settings, f"of {version}"),
                predictions=count,
                first_day=first.astimezone(UTC).date(),
                last_day=last.astimezone(UTC).date(),
            )
            for version, (first, last, count) in spans.items()
        ],
    )


# Learning.


@dataclass(frozen=True)
class TrainingRow:
    day: date
    trigger: str
    status: str
    champion_before: str | None
    challenger: str | None
    mae_before: float | None  # hold-out, champion
    mae_after: float | None  # hold-out, challenger
    r2_before: float | None
    r2_after: float | None
    r2_delta: float | None
    improvement_lower: float | None
    improvement_needed: float | None
    training_rows: int | None
    training_seconds: float | None
    reason: str


@dataclass(frozen=True)
class PromotionRow:
    day: date
    version: str
    previous: str | None  # the model that served the days before
    before: LiveFigures
    after: LiveFigures
    mae_change: float | None  # after minus before: below 0 is better


@dataclass(frozen=True)
class LearningSection:
    trainings: list[TrainingRow]
    promotions: list[PromotionRow]
    weeks: list[Week]


def _training_row(record: dict[str, Any]) -> TrainingRow:
    improvement = record.get("improvement") or {}
    return TrainingRow(
        day=history.record_day(record),
        trigger=record["trigger"],
        status=record["status"],
        champion_before=record.get("champion_before"),
        challenger=record.get("challenger"),
        mae_before=record.get("mae_before"),
        mae_after=record.get("mae_after"),
        r2_before=record.get("r2_before"),
        r2_after=record.get("r2_after"),
        r2_delta=record.get("r2_delta"),
        improvement_lower=improvement.get("lower"),
        improvement_needed=improvement.get("needed"),
        training_rows=record.get("training_rows"),
        training_seconds=record.get("training_seconds"),
        reason=record["reason"],
    )


def _promotion_row(
    db: Database, period: Period, settings: ReportSettings, record: dict[str, Any]
) -> PromotionRow:
    promoted_at = datetime.fromisoformat(record["as_of"])
    version = record["champion_after"]
    window_start = promoted_at - timedelta(days=settings.lookback_days)
    previous = serving_model(db, window_start, promoted_at)
    if previous == version:  # a re-promotion: the days before were already its own
        previous = record.get("champion_before")
    before_live = (
        history.judged_outcomes(
            db,
            window_start,
            promoted_at,
            settings.maturity,
            model_version=previous,
            known_by=period.end,
        )
        if previous
        else LiveOutcomes.empty()
    )
    after_live = history.judged_outcomes(
        db,
        promoted_at,
        min(promoted_at + timedelta(days=settings.lookback_days), period.end),
        settings.maturity,
        model_version=version,
        known_by=period.end,
    )
    before = live_figures(
        before_live,
        settings,
        f"of {previous} in the {settings.lookback_days} days before"
        if previous
        else f"of any model in the {settings.lookback_days} days before",
    )
    after = live_figures(
        after_live, settings, f"of {version} in the {settings.lookback_days} days after"
    )
    change = (
        after.mae.value - before.mae.value
        if after.mae.value is not None and before.mae.value is not None
        else None
    )
    return PromotionRow(day_judged(promoted_at), version, previous, before, after, change)


def learning_section(
    db: Database, period: Period, settings: ReportSettings, records: list[dict[str, Any]]
) -> LearningSection:
    return LearningSection(
        trainings=[_training_row(r) for r in records if history.set_out_to_train(r)],
        promotions=[
            _promotion_row(db, period, settings, r)
            for r in records
            if r["status"] == "retrained" and r.get("champion_after")
        ],
        weeks=history.weeks(db, period, settings.maturity),
    )
