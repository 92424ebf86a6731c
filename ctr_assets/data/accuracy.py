"""The live model's accuracy, computed by PostgreSQL over resolved predictions.

Only the given model version's predictions count (the champion's): once a new champion
serves, the old model's errors no longer weigh on the judgement. The window is by
`predicted_at`, over predictions whose outcome is known by `as_of`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ctr_assets.db.connection import Database

_IN_WINDOW = """
    WHERE p.model_version = %(version)s
      AND p.predicted_at >= %(since)s AND p.predicted_at < %(as_of)s
      AND p.actual_ctr IS NOT NULL AND p.resolved_at <= %(as_of)s
      AND p.predicted_ctr IS NOT NULL
"""
# Bad rows are left out and counted. A CTR is a rate: NaN, infinity and anything outside
# [0, 1] is not (BETWEEN is false for NaN, which PostgreSQL sorts above every number). A ROAS
# outside [0, 1e6] (NaN and infinity too) leaves the row out of the ROAS figures only.
_CTR_OK = "(p.predicted_ctr BETWEEN 0 AND 1 AND p.actual_ctr BETWEEN 0 AND 1)"
_ROAS_OK = (
    "(coalesce(p.predicted_roas BETWEEN 0 AND 1e6, true) "
    "AND coalesce(p.actual_roas BETWEEN 0 AND 1e6, true))"
)
_JUDGED = f"""
    (SELECT p.video_id, p.predicted_ctr, p.actual_ctr,
            CASE WHEN {_ROAS_OK} THEN p.predicted_roas END AS predicted_roas,
            CASE WHEN {_ROAS_OK} THEN p.actual_roas END AS actual_roas
     FROM prediction_records p {_IN_WINDOW} AND {_CTR_OK}) p
"""
BAD_ROW_REASONS = ("invalid_ctr", "invalid_roas")


@dataclass(frozen=True)
class PlatformAccuracy:
    platform: str
    n_samples: int
    mae: float
    bias: float  # mean predicted minus mean actual CTR


@dataclass(frozen=True)
class AccuracyReport:
    """How far one model's predictions were from what happened, over one window.

    Figures are None when there is nothing to compute them from, never a stand-in 0.
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

    @property
    def bias(self) -> float | None:
        if self.mean_predicted_ctr is None or self.mean_actual_ctr is None:
            return None
        return self.mean_predicted_ctr - self.mean_actual_ctr


def measure_accuracy(
    db: Database, model_version: str | None, as_of: datetime, lookback_days: int = 7
) -> AccuracyReport:
    """Accuracy of `model_version` over `[as_of - lookback_days, as_of)`; with no version
    (no champion yet) there is nothing to judge and every figure is None."""
    if lookback_days < 1:
        raise ValueError(f"lookback_days must be at least 1, got {lookback_days}")
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
    params = {
        "version": model_version,
        "as_of": as_of,
        "since": as_of - timedelta(days=lookback_days),
    }
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            f"""
            SELECT count(*) FILTER (WHERE NOT {_CTR_OK}),
                   count(*) FILTER (WHERE {_CTR_OK} AND NOT {_ROAS_OK})
            FROM prediction_records p
            {_IN_WINDOW}
            """,
            params,
        )
        bad_rows = dict(zip(BAD_ROW_REASONS, map(int, cur.fetchone()), strict=True))
        empty = replace(empty, bad_rows=bad_rows)
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
            return empty
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
        bad_rows=bad_rows,
    )
