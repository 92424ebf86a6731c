"""Replays the retrain gate day by day over stored predictions: what each gate would have
decided, without training anything.

Each day is judged as of its end, on the model that served it: the version that made the
most of the window's predictions (the champion of the time, or a model from before this
product, such as `legacy-cron`). The evidence is computed once per day, then each gate's
rule reads it, so the gates are compared on exactly the same rows. A backtest trains
nothing, so after a day that would have retrained it keeps judging the model that really
served: read the first day each gate fires, not every day after it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta

from ctr_assets.data.accuracy import Maturity
from ctr_assets.db.connection import Database
from ctr_assets.ml.decision import GATES, RetrainPolicy, decide_retrain
from ctr_assets.retraining.measure import measure_champion


@dataclass(frozen=True)
class BacktestDay:
    as_of: datetime
    model_version: str | None
    n_samples: int
    mae: float | None
    mae_lower_bound: float | None
    mae_upper_bound: float | None
    noise_mae: float | None
    cusum: float | None
    immature_rows: int
    verdicts: dict[str, str]  # gate -> action
    reasons: dict[str, str]  # gate -> reason

    @property
    def day(self) -> date:
        """The day judged (it ends at `as_of`)."""
        return (self.as_of - timedelta(microseconds=1)).date()

    def as_json_dict(self) -> dict[str, object]:
        return asdict(self) | {"as_of": self.as_of.isoformat(), "day": self.day.isoformat()}


@dataclass(frozen=True)
class GateSummary:
    gate: str
    retrain_days: list[str]  # ISO dates of the days that would have retrained
    first_retrain: str | None


def serving_model(db: Database, since: datetime, until: datetime) -> str | None:
    """The version that made the most predictions in `[since, until)`."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT model_version FROM prediction_records "
            "WHERE predicted_at >= %s AND predicted_at < %s AND model_version IS NOT NULL "
            "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
            (since, until),
        )
        row = cur.fetchone()
    return row[0] if row else None


def backtest(
    db: Database,
    end: datetime,
    days: int,
    policy: RetrainPolicy,
    gates: tuple[str, ...] = GATES,
    lookback_days: int = 7,
    maturity: Maturity | None = None,
) -> list[BacktestDay]:
    """One judgement per day for the `days` days ending at `end` (each as of its end)."""
    if days < 1:
        raise ValueError(f"a backtest needs at least one day, got {days}")
    unknown = sorted(set(gates) - set(GATES))
    if unknown:
        raise ValueError(f"unknown gates {unknown}; choose from {GATES}")
    result = []
    for offset in range(days - 1, -1, -1):
        as_of = end - timedelta(days=offset)
        version = serving_model(db, as_of - timedelta(days=lookback_days), as_of)
        report = measure_champion(db, version, as_of, policy, lookback_days, maturity)
        evidence = report.evidence
        verdicts, reasons = {}, {}
        for gate in gates:
            decision = decide_retrain(evidence, replace(policy, gate=gate), version is not None)
            verdicts[gate] = decision.action if version else "no_predictions"
            reasons[gate] = decision.reason if version else "no predictions in the window"
        result.append(
            BacktestDay(
                as_of=as_of,
                model_version=version,
                n_samples=report.n_samples,
                mae=report.mae,
                mae_lower_bound=evidence.mae_lower_bound if evidence else None,
                mae_upper_bound=evidence.mae_upper_bound if evidence else None,
                noise_mae=evidence.noise_mae if evidence else None,
                cusum=evidence.cusum_statistic if evidence else None,
                immature_rows=report.immature_rows,
                verdicts=verdicts,
                reasons=reasons,
            )
        )
    return result


def summarise(days: list[BacktestDay], gates: tuple[str, ...]) -> list[GateSummary]:
    """Per gate: the days it would have retrained, and the first of them."""
    summaries = []
    for gate in gates:
        fired = [d.day.isoformat() for d in days if d.verdicts.get(gate) == "retrain"]
        summaries.append(GateSummary(gate, fired, fired[0] if fired else None))
    return summaries
