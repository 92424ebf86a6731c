"""The reliability section of the report: the checks themselves, and how they went."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from ctr_assets.db.connection import Database
from ctr_assets.reporting import history
from ctr_assets.reporting.figures import Figure, figure, ratio
from ctr_assets.reporting.history import Period
from ctr_assets.retraining.record import STATUSES


@dataclass(frozen=True)
class ErrorRow:
    day: date
    checked_at: str
    trigger: str
    reason: str


@dataclass(frozen=True)
class DayChecks:
    day: date
    statuses: dict[str, int]  # status -> checks that judged the day


@dataclass(frozen=True)
class ReliabilitySection:
    checks: Figure
    days_checked: Figure
    by_trigger: dict[str, dict[str, int]]  # trigger -> status -> checks
    by_status: dict[str, int]
    checks_by_day: list[DayChecks]
    retrain_success_rate: Figure
    median_training_seconds: Figure
    worst_training_seconds: Figure
    errors: list[ErrorRow]
    purchase_signals: Figure


def reliability_section(
    db: Database, period: Period, records: list[dict[str, Any]]
) -> ReliabilitySection:
    by_trigger: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        by_trigger[record["trigger"]][record["status"]] += 1
    statuses = Counter(record["status"] for record in records)
    by_day = history.records_by_day(records)
    attempts = sum(history.set_out_to_train(r) for r in records)
    finished = statuses["retrained"] + statuses["rejected"]
    seconds = [r["training_seconds"] for r in records if r.get("training_seconds") is not None]
    no_training = "no challenger was trained in the period"
    return ReliabilitySection(
        checks=figure(len(records), ""),
        days_checked=figure(len(by_day), ""),
        by_trigger={
            trigger: {status: counts[status] for status in STATUSES}
            for trigger, counts in sorted(by_trigger.items())
        },
        by_status={status: statuses[status] for status in STATUSES},
        checks_by_day=[
            DayChecks(
                day, {s: sum(r["status"] == s for r in by_day.get(day, [])) for s in STATUSES}
            )
            for day in period.dates()
        ],
        retrain_success_rate=figure(
            ratio(finished, attempts),
            "no check set out to train a challenger in the period",
        ),
        median_training_seconds=figure(
            statistics.median(seconds) if seconds else None, no_training
        ),
        worst_training_seconds=figure(max(seconds) if seconds else None, no_training),
        errors=[
            ErrorRow(
                history.record_day(r),
                r["checked_at"],
                r["trigger"],
                r["reason"],
            )
            for r in records
            if r["status"] == "error"
        ],
        purchase_signals=figure(history.purchase_signals(db, period), ""),
    )
