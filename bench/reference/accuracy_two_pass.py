"""The accuracy as measured before the one-pass query (frozen at commit c266be7), the
reference `bench.sensor_bench` times `measure_accuracy` against. Not used by the product.

Original docstring: the live model's accuracy, computed by PostgreSQL over resolved predictions.

Only the given model version's predictions count (the champion's): once a new champion
serves, the old model's errors no longer weigh on the judgement. The window is by
`predicted_at`, over predictions whose outcome is known by `as_of`.

Of the resolved rows only the judged ones count: a CTR within [0, 1] on both sides
(anything else, NaN included, is a bad row, `invalid_ctr`), positive `actual_impressions`
(an outcome's noise is known only from its impressions; rows without are
`no_impressions`), and a mature outcome (`Maturity`; the rest are `immature`). Each kind
left out is counted.
"""

from __future__ import annotations

import math
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
# A CTR is a rate: NaN, infinity and anything outside [0, 1] is not (BETWEEN is false for
# NaN, which PostgreSQL sorts above every number): such rows are `invalid_ctr`. A ROAS outside
# [0, 1e6] (NaN and infinity too) leaves the row out of the ROAS figures only
# (`invalid_roas`).
_CTR_OK = "(p.predicted_ctr BETWEEN 0 AND 1 AND p.actual_ctr BETWEEN 0 AND 1)"
_ROAS_OK = (
    "(coalesce(p.predicted_roas BETWEEN 0 AND 1e6, true) "
    "AND coalesce(p.actual_roas BETWEEN 0 AND 1e6, true))"
)
_HAS_IMPRESSIONS = "p.actual_impressions > 0"
_MATURE = (
    "p.actual_impressions >= %(min_impressions)s "
    "AND p.predicted_at <= %(as_of)s - %(min_age)s::interval"
)
_JUDGED_WHERE = f"{_RESOLVED} AND {_CTR_OK} AND {_HAS_IMPRESSIONS} AND {_MATURE}"
_JUDGED = f"""
    (SELECT p.video_id, p.predicted_ctr, p.actual_ctr,
            CASE WHEN {_ROAS_OK} THEN p.predicted_roas END AS predicted_roas,
            CASE WHEN {_ROAS_OK} THEN p.actual_roas END AS actual_roas
     FROM prediction_records p {_JUDGED_WHERE}) p
"""
BAD_ROW_REASONS = ("invalid_ctr", "invalid_roas")


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
    bad_rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BAD_ROW_REASONS, 0))
    immature_rows: int = 0
    no_impressions_rows: int = 0
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
            SELECT count(*) FILTER (WHERE NOT {_CTR_OK}),
                   count(*) FILTER (WHERE {_CTR_OK} AND NOT {_ROAS_OK}
                                    AND {_HAS_IMPRESSIONS} AND {_MATURE}),
                   count(*) FILTER (WHERE {_CTR_OK} AND p.actual_impressions IS NULL
                                    OR {_CTR_OK} AND p.actual_impressions <= 0),
                   count(*) FILTER (WHERE {_CTR_OK} AND {_HAS_IMPRESSIONS}
                                    AND NOT ({_MATURE}))
            FROM prediction_records p
            {_RESOLVED}
            """,
            params,
        )
        invalid_ctr, invalid_roas, no_impressions, immature = map(int, cur.fetchone())
        left_out = {
            "bad_rows": {"invalid_ctr": invalid_ctr, "invalid_roas": invalid_roas},
            "immature_rows": immature,
            "no_impressions_rows": no_impressions,
        }
        # No squares in SQL: PostgreSQL raises on a float that underflows (an error of 1e-170
        # squared), so the mean squared error is var_pop + mean² of the errors, in Python.
        cur.execute(
            f"""
            SELECT count(*),
                   avg(abs(p.predicted_ctr - p.actual_ctr)),
                   avg(p.predicted_ctr - p.actual_ctr),
                   var_pop(p.predicted_ctr - p.actual_ctr),
                   CASE WHEN min(p.actual_ctr) < max(p.actual_ctr)
                        THEN var_pop(p.actual_ctr) * count(*) END,
                   avg(p.predicted_ctr),
                   avg(p.actual_ctr),
                   count(p.predicted_roas - p.actual_roas),
                   sum(abs(p.predicted_roas - p.actual_roas)),
                   sum(p.actual_roas) FILTER (WHERE p.predicted_roas IS NOT NULL),
                   avg(abs(p.predicted_roas - p.actual_roas))
            FROM {_JUDGED}
            """,
            params,
        )
        (
            n,
            mae,
            mean_error,
            error_variance,
            ss_tot,
            mean_pred,
            mean_act,
            n_roas,
            roas_abs,
            roas_sum,
            roas_mae,
        ) = cur.fetchone()
        if not n:
            return replace(empty, **left_out)
        cur.execute(
            f"""
            SELECT coalesce(v.platform, 'unknown'), count(*),
                   avg(abs(p.predicted_ctr - p.actual_ctr)),
                   avg(p.predicted_ctr) - avg(p.actual_ctr)
            FROM {_JUDGED} LEFT JOIN videos v ON v.video_id = p.video_id
            GROUP BY 1 ORDER BY 2 DESC, 1
            """,
            params,
        )
        platforms = tuple(
            PlatformAccuracy(name, int(count), float(p_mae), float(p_bias))
            for name, count, p_mae, p_bias in cur.fetchall()
        )
    mean_squared_error = error_variance + mean_error**2
    ss_res = mean_squared_error * n
    return AccuracyReport(
        model_version=model_version,
        as_of=as_of,
        lookback_days=lookback_days,
        n_samples=int(n),
        mae=float(mae),
        rmse=math.sqrt(mean_squared_error),
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
    positional = _JUDGED_WHERE
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
