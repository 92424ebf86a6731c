"""The live model's accuracy, computed by PostgreSQL over resolved predictions.

Only the given model version's predictions count (the champion's): once a new champion
serves, the old model's errors no longer weigh on the judgement. The window is by
`predicted_at`, over predictions whose outcome is known by `as_of`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ctr_assets.db.connection import Database

_IN_WINDOW = """
    WHERE p.model_version = %(version)s
      AND p.predicted_at >= %(since)s AND p.predicted_at < %(as_of)s
      AND p.actual_ctr IS NOT NULL AND p.resolved_at <= %(as_of)s
      AND p.predicted_ctr IS NOT NULL
"""


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
            {_IN_WINDOW}
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
        if not n:
            return empty
        cur.execute(
            f"""
            SELECT coalesce(v.platform, 'unknown'), count(*),
                   avg(abs(p.predicted_ctr - p.actual_ctr)),
                   avg(p.predicted_ctr) - avg(p.actual_ctr)
            FROM prediction_records p LEFT JOIN videos v ON v.video_id = p.video_id
            {_IN_WINDOW}
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
    )
