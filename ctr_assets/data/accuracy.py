"""The live model's accuracy, computed by PostgreSQL over resolved predictions.

Only the given model version's predictions count (the champion's): once a new champion
serves, the old model's errors no longer weigh on the judgement. The window is by
`predicted_at`, over predictions whose outcome is known by `as_of`.

Of the resolved rows only the judged ones count: a CTR within [0, 1] on both sides
(anything else, NaN included, is `invalid`), positive `actual_impressions` (an outcome's
noise is known only from its impressions; rows without are `no_impressions`), and a
mature outcome (`Maturity`; the rest are `immature`). Each kind left out is counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from ctr_assets.db.connection import Database
from ctr_assets.ml.gate import Outcomes

if TYPE_CHECKING:
    from ctr_assets.ml.gate import GateEvidence

_RESOLVED = """
    WHERE p.model_version = %(version)s
      AND p.predicted_at >= %(since)s AND p.predicted_at < %(as_of)s
      AND p.actual_ctr IS NOT NULL AND p.resolved_at <= %(as_of)s
      AND p.predicted_ctr IS NOT NULL
"""
_VALID = "p.predicted_ctr BETWEEN 0 AND 1 AND p.actual_ctr BETWEEN 0 AND 1"
_HAS_IMPRESSIONS = "p.actual_impressions > 0"
_MATURE = (
    "p.actual_impressions >= %(min_impressions)s "
    "AND p.predicted_at <= %(as_of)s - %(min_age)s::interval"
)
_JUDGED = f"{_RESOLVED} AND {_VALID} AND {_HAS_IMPRESSIONS} AND {_MATURE}"


@dataclass(frozen=True)
class Maturity:
    """When an outcome is settled enough to judge the model by."""

    min_impressions: int = 20
    min_age_hours: float = 0.0  # since the prediction, as of the check

    def __post_init__(self) -> None:
        if self.min_impressions < 1:
            raise ValueError(f"min_impressions must be at least 1, got {self.min_impressions}")
        if not self.min_age_hours >= 0:
            raise ValueError(f"min_age_hours must be 0 or more, got {self.min_age_hours}")


@dataclass(frozen=True)
class PlatformAccuracy:
    platform: str
    n_samples: int
    mae: float
    bias: float  # mean predicted minus mean actual CTR


@dataclass(frozen=True)
class AccuracyReport:
    """How far one model's predictions were from what happened, over one window.

    Figures are over the judged rows and are None when there is nothing to compute them
    from, never a stand-in 0. `evidence` is the retrain gate's reading of the same rows.
    """

    model_version: str | None
    as_of: datetime
    lookback_days: int
    n_samples: int
    mae: float | None
    rmse: float | None
    r2: float | None
    mean_predicted_ctr: float | None
    mean_actual_ctr: float | None
    roas_samples: int
    roas_accuracy: float | None  # 1 - sum|predicted - actual| / sum(actual)
    roas_mae: float | None
    by_platform: tuple[PlatformAccuracy, ...] = ()
    immature_rows: int = 0
    no_impressions_rows: int = 0
    invalid_rows: int = 0
    evidence: GateEvidence | None = field(default=None, compare=False)

    @property
    def bias(self) -> float | None:
        if self.mean_predicted_ctr is None or self.mean_actual_ctr is None:
            return None
        return self.mean_predicted_ctr - self.mean_actual_ctr


def _params(
    model_version: str, as_of: datetime, since: datetime, maturity: Maturity
) -> dict[str, object]:
    return {
        "version": model_version,
        "as_of": as_of,
        "since": since,
        "min_impressions": maturity.min_impressions,
        "min_age": f"{maturity.min_age_hours} hours",
    }


def measure_accuracy(
    db: Database,
    model_version: str | None,
    as_of: datetime,
    lookback_days: int = 7,
    maturity: Maturity | None = None,
) -> AccuracyReport:
    """Accuracy of `model_version` over `[as_of - lookback_days, as_of)`; with no version
    (no champion yet) there is nothing to judge and every figure is None."""
    if lookback_days < 1:
        raise ValueError(f"lookback_days must be at least 1, got {lookback_days}")
    maturity = maturity or Maturity()
    empty = AccuracyReport(
        model_version=model_version,
        as_of=as_of,
        lookback_days=lookback_days,
        n_samples=0,
        mae=None,
        rmse=None,
        r2=None,
        mean_predicted_ctr=None,
        mean_actual_ctr=None,
        roas_samples=0,
        roas_accuracy=None,
        roas_mae=None,
    )
    if model_version is None:
        return empty
    params = _params(model_version, as_of, as_of - timedelta(days=lookback_days), maturity)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            f"""
            SELECT count(*) FILTER (WHERE NOT ({_VALID})),
                   count(*) FILTER (WHERE {_VALID} AND p.actual_impressions IS NULL
                                    OR {_VALID} AND p.actual_impressions <= 0),
                   count(*) FILTER (WHERE {_VALID} AND {_HAS_IMPRESSIONS}
                                    AND NOT ({_MATURE}))
            FROM prediction_records p
            {_RESOLVED}
            """,
            params,
        )
        invalid, no_impressions, immature = (int(v) for v in cur.fetchone())
        cur.execute(
            f"""
            SELECT count(*),
                   avg(abs(p.predicted_ctr - p.actual_ctr)),
                   sqrt(avg((p.predicted_ctr - p.actual_ctr) ^ 2)),
                   sum((p.predicted_ctr - p.actual_ctr) ^ 2),
                   CASE WHEN min(p.actual_ctr) < max(p.actual_ctr)
                        THEN var_pop(p.actual_ctr) * count(*) END,
                   avg(p.predicted_ctr),
                   avg(p.actual_ctr),
                   count(p.predicted_roas - p.actual_roas),
                   sum(abs(p.predicted_roas - p.actual_roas)),
                   sum(p.actual_roas) FILTER (WHERE p.predicted_roas IS NOT NULL),
                   avg(abs(p.predicted_roas - p.actual_roas))
            FROM prediction_records p
            {_JUDGED}
            """,
            params,
        )
        (
            n,
            mae,
            rmse,
            ss_res,
            ss_tot,
            mean_pred,
            mean_act,
            n_roas,
            roas_abs,
            roas_sum,
            roas_mae,
        ) = cur.fetchone()
        left_out = {
            "immature_rows": immature,
            "no_impressions_rows": no_impressions,
            "invalid_rows": invalid,
        }
        if not n:
            return replace(empty, **left_out)
        cur.execute(
            f"""
            SELECT coalesce(v.platform, 'unknown'), count(*),
                   avg(abs(p.predicted_ctr - p.actual_ctr)),
                   avg(p.predicted_ctr) - avg(p.actual_ctr)
            FROM prediction_records p LEFT JOIN videos v ON v.video_id = p.video_id
            {_JUDGED}
            GROUP BY 1 ORDER BY 2 DESC, 1
            """,
            params,
        )
        platforms = tuple(
            PlatformAccuracy(name, int(count), float(p_mae), float(p_bias))
            for name, count, p_mae, p_bias in cur.fetchall()
        )
    return AccuracyReport(
        model_version=model_version,
        as_of=as_of,
        lookback_days=lookback_days,
        n_samples=int(n),
        mae=float(mae),
        rmse=float(rmse),
        # R² needs spread in the outcomes; with none it is undefined, not 0. (var_pop of
        # equal values can come back as rounding dust, hence the min < max test above.)
        r2=float(1 - ss_res / ss_tot) if ss_tot else None,
        mean_predicted_ctr=float(mean_pred),
        mean_actual_ctr=float(mean_act),
        roas_samples=int(n_roas),
        roas_accuracy=float(1 - roas_abs / roas_sum) if n_roas and roas_sum else None,
        roas_mae=float(roas_mae) if roas_mae is not None else None,
        by_platform=platforms,
        **left_out,
    )


def load_outcomes(
    db: Database,
    model_version: str,
    as_of: datetime,
    since: datetime,
    maturity: Maturity | None = None,
) -> Outcomes:
    """The judged rows of `model_version` predicted in `[since, as_of)`, ordered by when
    their outcome resolved, each batched by its resolution day (for the CUSUM), with its
    prediction time (epoch seconds) to cut windows from."""
    params = _params(model_version, as_of, since, maturity or Maturity())
    positional = _JUDGED
    order = ["version", "since", "as_of", "min_impressions", "min_age"]
    for number, name in enumerate(order, start=1):
        positional = positional.replace(f"%({name})s", f"${number}")
    with db.connect_arrow() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT p.predicted_ctr, p.actual_ctr, p.actual_impressions::float8, "
            "floor(extract(epoch FROM p.resolved_at) / 86400)::float8, "
            "extract(epoch FROM p.predicted_at)::float8 "
            f"FROM prediction_records p {positional} ORDER BY p.resolved_at, p.id",
            [params[name] for name in order],
        )
        table = cur.fetch_arrow_table()
    columns = [table.column(i).to_numpy().astype(np.float64) for i in range(5)]
    return Outcomes(*columns)
