"""What the tables say about a period of days: the report's SQL, and nothing else.

PostgreSQL does the arithmetic. A prediction counts as judged by the same rules as the
accuracy the gate reads (`ctr_assets/data/accuracy.py`): an outcome known by the end of the
period, both CTRs within [0, 1], positive impressions, and a mature outcome (`Maturity`).
A ROAS outside [0, 1e6] leaves the row out of the ROAS figures only. Unlike the gate, the
report judges every live prediction of the period, whichever model made it. A figure
that cannot be computed is None, never 0.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np

from ctr_assets.data.accuracy import Maturity
from ctr_assets.db.connection import Database
from ctr_assets.ml.gate import Outcomes
from ctr_assets.retraining.record import ordered

_CTR_OK = "(p.predicted_ctr BETWEEN 0 AND 1 AND p.actual_ctr BETWEEN 0 AND 1)"
_ROAS_OK = "(p.predicted_roas BETWEEN 0 AND 1e6 AND p.actual_roas BETWEEN 0 AND 1e6)"  # both filled
_ACTUAL_ROAS_OK = "p.actual_roas BETWEEN 0 AND 1e6"
_JUDGED = f"""
    p.actual_ctr IS NOT NULL AND p.predicted_ctr IS NOT NULL AND {_CTR_OK}
    AND p.resolved_at <= %(end)s
    AND p.actual_impressions >= greatest(%(min_impressions)s, 1)
    AND p.predicted_at <= %(end)s - %(min_age)s::interval
"""
_PREDICTED_IN_PERIOD = "p.predicted_at >= %(start)s AND p.predicted_at < %(end)s"


@dataclass(frozen=True)
class Period:
    """`days` whole UTC days ending with `last_day`."""

    first_day: date
    last_day: date

    @classmethod
    def ending(cls, last_day: date, days: int) -> Period:
        if days < 1:
            raise ValueError(f"a report covers at least one day, got {days}")
        return cls(last_day - timedelta(days=days - 1), last_day)

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(), UTC)

    @property
    def end(self) -> datetime:
        """Midnight after the last day: the period is `[start, end)`."""
        return datetime.combine(self.last_day + timedelta(days=1), time(), UTC)

    def dates(self) -> list[date]:
        return [self.first_day + timedelta(days=i) for i in range(self.days)]


def day_judged(as_of: datetime) -> date:
    """The UTC day a check judges: the one its accuracy window ends in (a check as of
    midnight judges the day that just ended)."""
    return (as_of.astimezone(UTC) - timedelta(microseconds=1)).date()


def record_day(record: dict[str, Any]) -> date:
    """The day a stored decision record judged."""
    return day_judged(datetime.fromisoformat(record["as_of"]))


def _params(period: Period, maturity: Maturity) -> dict[str, Any]:
    return {
        "start": period.start,
        "end": period.end,
        "min_impressions": maturity.min_impressions,
        "min_age": f"{maturity.min_age_hours} hours",
    }


def _rows(db: Database, query: str, params: dict[str, Any] | tuple = ()) -> list[tuple]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def decisions(db: Database, period: Period) -> list[dict[str, Any]]:
    """The decision records of the checks that judged a day of the period, in order.

    A check belongs to the day its accuracy window ends in (`as_of`, which is when it ran
    except in replays and the demo, whose days are simulated)."""
    rows = _rows(
        db,
        "SELECT record FROM retrain_decisions "
        "WHERE coalesce((record->>'as_of')::timestamptz, checked_at) > %(start)s "
        "AND coalesce((record->>'as_of')::timestamptz, checked_at) <= %(end)s "
        "ORDER BY coalesce((record->>'as_of')::timestamptz, checked_at), id",
        {"start": period.start, "end": period.end},
    )
    return [ordered(row[0]) for row in rows]


def records_by_day(records: list[dict[str, Any]]) -> dict[date, list[dict[str, Any]]]:
    """The records per day they judged, in order."""
    days: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        days[record_day(record)].append(record)
    return days


def set_out_to_train(record: dict[str, Any]) -> bool:
    """Whether the check set out to train a challenger: it finished one (`retrained`,
    `rejected`), or it failed (`error`) after its gate said retrain (the check's own
    failures come only after that decision) or after saving a challenger. A run that died
    before it decided (its record written for it, `retraining/failed_run.py`) did not."""
    status = record["status"]
    if status in ("retrained", "rejected"):
        return True
    if status != "error":
        return False
    views = record.get("views") or {}
    first_model = record.get("champion_before") is None and record["reason"].startswith(
        "no champion yet"
    )
    said_retrain = views.get(record.get("gate") or "") == "retrain" or first_model
    return said_retrain or record.get("challenger") is not None


def latest_check_as_of(db: Database) -> datetime | None:
    rows = _rows(
        db,
        "SELECT max(coalesce((record->>'as_of')::timestamptz, checked_at)) FROM retrain_decisions",
    )
    return rows[0][0]


def champion(db: Database) -> tuple[str, datetime] | None:
    """The champion now (the newest `champion_history` row), and since when."""
    rows = _rows(db, "SELECT version, changed_at FROM champion_history ORDER BY id DESC LIMIT 1")
    return (rows[0][0], rows[0][1]) if rows else None


def first_prediction_at(db: Database) -> datetime | None:
    return _rows(db, "SELECT min(predicted_at) FROM prediction_records")[0][0]


def purchase_signals(db: Database, period: Period) -> int:
    """Purchase signals received in the period."""
    rows = _rows(
        db,
        "SELECT count(*) FROM purchase_signals WHERE received_at >= %s AND received_at < %s",
        (period.start, period.end),
    )
    return int(rows[0][0])


@dataclass(frozen=True)
class LiveOutcomes:
    """The period's judged live predictions, one row each, as arrays (ordered by id)."""

    outcomes: Outcomes  # predicted and observed CTR, impressions: what the gate reads
    predicted_roas: np.ndarray  # NaN where either ROAS is missing or out of range
    actual_roas: np.ndarray
    platform: np.ndarray  # str; 'unknown' when the video or its platform is
    model_version: np.ndarray  # str; 'unknown' when NULL
    predicted_at: np.ndarray  # epoch seconds

    def __len__(self) -> int:
        return len(self.outcomes)

    @classmethod
    def empty(cls) -> LiveOutcomes:
        nothing = np.empty(0)
        return cls(Outcomes(nothing, nothing, nothing), nothing, nothing, nothing, nothing, nothing)

    def subset(self, keep: np.ndarray) -> LiveOutcomes:
        o = self.outcomes
        return LiveOutcomes(
            Outcomes(o.predicted[keep], o.observed[keep], o.impressions[keep]),
            self.predicted_roas[keep],
            self.actual_roas[keep],
            self.platform[keep],
            self.model_version[keep],
            self.predicted_at[keep],
        )


def judged_outcomes(
    db: Database,
    start: datetime,
    end: datetime,
    maturity: Maturity,
    *,
    model_version: str | None = None,
    known_by: datetime | None = None,
) -> LiveOutcomes:
    """The judged live predictions made in `[start, end)` (of one model, if given), with
    the outcomes known by `known_by` (default `end`)."""
    params = {
        "start": start,
        "end": end,
        "known_by": known_by or end,
        "min_impressions": maturity.min_impressions,
        "min_age": f"{maturity.min_age_hours} hours",
        "version": model_version,
    }
    query = f"""
        SELECT p.predicted_ctr, p.actual_ctr, p.actual_impressions::float8,
               CASE WHEN {_ROAS_OK} THEN p.predicted_roas END,
               CASE WHEN {_ROAS_OK} THEN p.actual_roas END,
               coalesce(v.platform, 'unknown'), coalesce(p.model_version, 'unknown'),
               extract(epoch FROM p.predicted_at)::float8
        FROM prediction_records p LEFT JOIN videos v ON v.video_id = p.video_id
        WHERE {_PREDICTED_IN_PERIOD} AND {_JUDGED.replace("%(end)s", "%(known_by)s")}
          AND (%(version)s::text IS NULL OR p.model_version = %(version)s)
        ORDER BY p.id
    """
    names = ["start", "end", "known_by", "min_impressions", "min_age", "version"]
    for number, name in enumerate(names, start=1):
        query = query.replace(f"%({name})s", f"${number}")
    with db.connect_arrow() as conn, conn.cursor() as cur:
        cur.execute(query, [params[name] for name in names])
        table = cur.fetch_arrow_table()

    def floats(i: int) -> np.ndarray:
        return table.column(i).to_numpy(zero_copy_only=False).astype(np.float64)

    return LiveOutcomes(
        Outcomes(floats(0), floats(1), floats(2)),
        floats(3),
        floats(4),
        np.asarray(table.column(5).to_pylist(), dtype=object),
        np.asarray(table.column(6).to_pylist(), dtype=object),
        floats(7),
    )


def model_spans(db: Database, period: Period) -> dict[str, tuple[datetime, datetime, int]]:
    """Per model version that predicted in the period: first and last prediction, count."""
    rows = _rows(
        db,
        f"SELECT coalesce(model_version, 'unknown'), min(predicted_at), max(predicted_at), "
        f"count(*) FROM prediction_records p WHERE {_PREDICTED_IN_PERIOD} "
        "GROUP BY 1 ORDER BY 2",
        {"start": period.start, "end": period.end},
    )
    return {version: (first, last, int(n)) for version, first, last, n in rows}


@dataclass(frozen=True)
class Decile:
    decile: int  # 1: the lowest predicted CTRs, 10: the highest
    n_samples: int
    mean_predicted_ctr: float
    impressions: float  # of the decile's outcomes
    clicks: float  # observed CTR x impressions, summed
    observed_ctr: float | None  # clicks / impressions
    roas_samples: int
    observed_roas: float | None  # mean actual ROAS of its rows that have one


def deciles(db: Database, period: Period, maturity: Maturity) -> list[Decile]:
    """The period's judged predictions in ten groups by predicted CTR (equal counts, ties
    broken by id), and what each group really did."""
    rows = _rows(
        db,
        f"""
        SELECT decile, count(*), avg(predicted_ctr), sum(actual_impressions)::float8,
               sum(actual_ctr * actual_impressions),
               sum(actual_ctr * actual_impressions) / nullif(sum(actual_impressions), 0),
               count(actual_roas), avg(actual_roas)
        FROM (SELECT p.predicted_ctr, p.actual_ctr, p.actual_impressions,
                     CASE WHEN {_ACTUAL_ROAS_OK} THEN p.actual_roas END AS actual_roas,
                     ntile(10) OVER (ORDER BY p.predicted_ctr, p.id) AS decile
              FROM prediction_records p
              WHERE {_PREDICTED_IN_PERIOD} AND {_JUDGED}) ranked
        GROUP BY decile ORDER BY decile
        """,
        _params(period, maturity),
    )
    return [
        Decile(
            int(decile),
            int(n),
            float(mean_predicted),
            float(impressions),
            float(clicks),
            None if observed is None else float(observed),
            int(n_roas),
            None if roas is None else float(roas),
        )
        for decile, n, mean_predicted, impressions, clicks, observed, n_roas, roas in rows
    ]


@dataclass(frozen=True)
class Week:
    monday: date
    days_in_period: int  # fewer than 7: the period cuts the week
    predictions: int  # made that week
    outcomes: int  # judged outcomes that resolved that week
    purchase_signals: int  # received that week


def weeks(db: Database, period: Period, maturity: Maturity) -> list[Week]:
    """The period's weeks (Monday to Sunday, UTC, cut to the period): the evidence that
    arrived in each."""
    params = _params(period, maturity)
    week = "date_trunc('week', {} AT TIME ZONE 'UTC')::date"
    counts: dict[str, dict[date, int]] = {}
    for name, query in (
        (
            "predictions",
            f"SELECT {week.format('p.predicted_at')}, count(*) FROM prediction_records p "
            f"WHERE {_PREDICTED_IN_PERIOD} GROUP BY 1",
        ),
        (
            "outcomes",
            f"SELECT {week.format('p.resolved_at')}, count(*) FROM prediction_records p "
            f"WHERE p.resolved_at >= %(start)s AND {_JUDGED} GROUP BY 1",
        ),
        (
            "purchase_signals",
            f"SELECT {week.format('s.received_at')}, count(*) FROM purchase_signals s "
            "WHERE s.received_at >= %(start)s AND s.received_at < %(end)s GROUP BY 1",
        ),
    ):
        counts[name] = {monday: int(n) for monday, n in _rows(db, query, params)}
    mondays = sorted({d - timedelta(days=d.weekday()) for d in period.dates()})
    return [
        Week(
            monday=monday,
            days_in_period=sum(
                1 for d in period.dates() if monday <= d < monday + timedelta(days=7)
            ),
            predictions=counts["predictions"].get(monday, 0),
            outcomes=counts["outcomes"].get(monday, 0),
            purchase_signals=counts["purchase_signals"].get(monday, 0),
        )
        for monday in mondays
    ]
