"""The accuracy report: a period of days of evidence a stakeholder can read.

Four sections, each figure with its definition (`figures.definitions`) and, where a target
exists, met or missed: accuracy over the period, learning (retrains and promotions),
reliability (the checks themselves) and ranking value (do the videos ranked highest really
do better?). Built from the tables alone; knows nothing of Dagster. What is missing (no
check on a day, no champion yet, a short history, no ROAS) is said in words.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ctr_assets.db.connection import Database
from ctr_assets.reporting import history, ranking, reliability, sections
from ctr_assets.reporting.figures import Figure, ReportSettings, definitions
from ctr_assets.reporting.history import Period, day_judged
from ctr_assets.reporting.html import render_html

DEFAULT_DAYS = 30


@dataclass(frozen=True)
class AccuracyReportDocument:
    """The whole report; `as_json_dict` is the JSON file, and the HTML shows these."""

    title: str
    generated_at: datetime
    period: Period
    settings: ReportSettings
    champion: str | None
    champion_since: datetime | None
    notes: list[str]
    accuracy: sections.AccuracySection
    learning: sections.LearningSection
    reliability: reliability.ReliabilitySection
    ranking: ranking.RankingSection
    definitions: dict[str, str]

    def headline(self) -> dict[str, Figure]:
        """The figures the Dagster UI plots over time."""
        return {
            **self.accuracy.headline,
            "checks": self.reliability.checks,
            "retrain_success_rate": self.reliability.retrain_success_rate,
            "median_training_seconds": self.reliability.median_training_seconds,
            "purchase_signals": self.reliability.purchase_signals,
            "top_decile_ctr_lift": self.ranking.top_decile_ctr_lift,
            "top_decile_roas_lift": self.ranking.top_decile_roas_lift,
        }

    def as_json_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["generated_at"] = self.generated_at.isoformat(timespec="seconds")
        if self.champion_since is not None:
            values["champion_since"] = self.champion_since.isoformat(timespec="seconds")
        values["period"] = {
            "first_day": self.period.first_day.isoformat(),
            "last_day": self.period.last_day.isoformat(),
            "days": self.period.days,
        }
        settings = values["settings"]
        settings["min_outcome_impressions"] = self.settings.maturity.min_impressions
        settings["min_outcome_age_hours"] = self.settings.maturity.min_age_hours
        del settings["maturity"]
        return _plain(values)


def _plain(value: Any) -> Any:
    """JSON-ready: dates as ISO 8601."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def report_file_name(period: Period, schema: str | None = None) -> str:
    """`accuracy-report[-SCHEMA]-LASTDAY.html`: one file per period's last day."""
    return f"accuracy-report{f'-{schema}' if schema else ''}-{period.last_day}.html"


def save_report(document: AccuracyReportDocument, html_path: Path) -> tuple[Path, Path]:
    """Writes the HTML page and, beside it with the suffix `.json`, the same figures as
    JSON; each file is written whole or not at all (a temporary file renamed)."""
    json_path = html_path.with_suffix(".json")
    values = document.as_json_dict()
    html_path.parent.mkdir(parents=True, exist_ok=True)
    for path, text in (
        (json_path, json.dumps(values, indent=2) + "\n"),
        (html_path, render_html(values)),
    ):
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    return html_path, json_path


def default_last_day(db: Database, now: datetime | None = None) -> date:
    """Today (UTC) when a check has judged it already, else yesterday: a report made
    before the day's check does not open on an empty day."""
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    latest = history.latest_check_as_of(db)
    return today if latest is not None and day_judged(latest) >= today else today - timedelta(1)


def build_report(
    db: Database,
    period: Period,
    settings: ReportSettings | None = None,
    *,
    now: datetime | None = None,
) -> AccuracyReportDocument:
    """The report of `period` from the tables of `db`."""
    settings = settings or ReportSettings()
    generated_at = now or datetime.now(UTC)
    records = history.decisions(db, period)
    champion = history.champion(db)
    first_prediction = history.first_prediction_at(db)
    notes = _history_notes(period, records, champion, first_prediction)
    return AccuracyReportDocument(
        title=f"CTR model accuracy, {period.first_day:%d %b %Y} to {period.last_day:%d %b %Y}",
        generated_at=generated_at,
        period=period,
        settings=settings,
        champion=champion[0] if champion else None,
        champion_since=champion[1] if champion else None,
        notes=notes,
        accuracy=sections.accuracy_section(db, period, settings, records),
        learning=sections.learning_section(db, period, settings, records),
        reliability=reliability.reliability_section(db, period, records),
        ranking=ranking.ranking_section(db, period, settings),
        definitions=definitions(settings.lookback_days, settings.confidence),
    )


def _history_notes(
    period: Period,
    records: list[dict[str, Any]],
    champion: tuple[str, datetime] | None,
    first_prediction: datetime | None,
) -> list[str]:
    """What the period lacks, in words."""
    notes = []
    if first_prediction is None:
        notes.append("No prediction has been recorded yet: there is nothing to measure.")
    elif first_prediction >= period.end:
        notes.append(
            f"The history starts after the period, on {first_prediction:%Y-%m-%d}: no "
            "prediction was made in it."
        )
    elif first_prediction.astimezone(UTC).date() > period.first_day:
        first = first_prediction.astimezone(UTC).date()
        covered = (period.last_day - first).days + 1
        notes.append(
            f"The history starts on {first:%Y-%m-%d}: only {covered} of the {period.days} "
            "days have predictions."
        )
    if not records:
        notes.append("No retrain check judged any day of the period.")
    if champion is None:
        notes.append(
            "No champion yet: no model of this product has served; the first check that "
            "finds enough training data trains one."
        )
    return notes
