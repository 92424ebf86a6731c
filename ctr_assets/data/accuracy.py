"""The live model's accuracy, computed by PostgreSQL over resolved predictions.

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

from ctr_assets.db.connection import Database, small_batches
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
BAD_ROW_REASONS = ("invalid_ctr", "invalid_roas")

# The window is read once, and nothing else: each resolved row of the window is classified
# (`kind`: judged, or left out and why) and aggregated per (platform, kind); Python adds the
# few groups up into the totals and the per-platform table (`_Moments`). A row's platform
# is the one recorded with the prediction (migration 0005); rows without one are grouped
# per video and only those videos are looked up, by primary key, after the aggregation, so
# `videos` is never scanned. No squares in SQL: PostgreSQL raises on a float that
# underflows (an error of 1e-170 squared), so spreads come from var_pop and the mean
# squared error is var_pop + mean² of the errors.
_JUDGED, _INVALID_CTR, _NO_IMPRESSIONS, _IMMATURE, _INVALID_ROAS = range(5)
_ONE_PASS = f"""
    SELECT coalesce(
               g.platform,
               (SELECT v.platform FROM videos v WHERE v.video_id = g.unplaced_video),
               'unknown'
           ),
           g.kind, g.n, g.abs_error, g.predicted, g.actual, g.error_var, g.actual_var,
           g.actual_min, g.actual_max, g.roas_n, g.roas_abs, g.roas_actual
    FROM (
        SELECT w.platform, w.unplaced_video, w.kind, count(*) AS n,
               sum(abs(w.predicted_ctr - w.actual_ctr)) AS abs_error,
               sum(w.predicted_ctr) AS predicted, sum(w.actual_ctr) AS actual,
               var_pop(w.predicted_ctr - w.actual_ctr) AS error_var,
               var_pop(w.actual_ctr) AS actual_var,
               min(w.actual_ctr) AS actual_min, max(w.actual_ctr) AS actual_max,
               count(w.roas_error) AS roas_n, sum(abs(w.roas_error)) AS roas_abs,
               sum(w.paired_actual_roas) AS roas_actual
        FROM (
            SELECT p.platform,
                   CASE WHEN p.platform IS NULL THEN p.video_id END AS unplaced_video,
                   p.predicted_ctr, p.actual_ctr,
                   CASE WHEN r.roas_ok THEN p.predicted_roas - p.actual_roas END AS roas_error,
                   CASE WHEN r.roas_ok AND p.predicted_roas IS NOT NULL
                        THEN p.actual_roas END AS paired_actual_roas,
                   CASE WHEN NOT {_CTR_OK} THEN {_INVALID_CTR}
                        WHEN NOT coalesce({_HAS_IMPRESSIONS}, false) THEN {_NO_IMPRESSIONS}
                        WHEN NOT ({_MATURE}) THEN {_IMMATURE}
                        WHEN NOT r.roas_ok THEN {_INVALID_ROAS}
                        ELSE {_JUDGED} END AS kind
            FROM prediction_records p, LATERAL (SELECT {_ROAS_OK} AS roas_ok) r
            {_RESOLVED}
        ) w
        GROUP BY 1, 2, 3
    ) g
"""


@dataclass
class _Moments:
    """Sums of one group of judged rows; groups add up exactly (Chan et al.'s formula for
    the spreads), so one pass per group is enough for the totals."""

    n: int = 0
    abs_error: float = 0.0
    predicted: float = 0.0
    actual: float = 0.0
    error_m2: float = 0.0  # sum of squared deviations of the error from its mean
    actual_m2: float = 0.0
    actual_min: float = math.inf
    actual_max: float = -math.inf
    roas_n: int = 0
    roas_abs: float = 0.0
    roas_actual: float = 0.0

    @classmethod
    def of_row(cls, row: tuple) -> _Moments:
        n, abs_error, predicted, actual, error_var, actual_var, low, high = row[2:10]
        roas_n, roas_abs, roas_actual = row[10:13]
        return cls(
            int(n), abs_error, predicted, actual, error_var * n, actual_var * n, low, high,
            int(roas_n), roas_abs or 0.0, roas_actual or 0.0,
        )  # fmt: skip

    def __add__(self, other: _Moments) -> _Moments:
        if not other.n:
            return self
        if not self.n:
            return other
        n = self.n + other.n

        def m2(mine: float, theirs: float, mean_gap: float) -> float:
            return mine + theirs + mean_gap**2 * self.n * other.n / n

        error_gap = (other.predicted - other.actual) / other.n - (
            self.predicted - self.actual
        ) / self.n
        actual_gap = other.actual / other.n - self.actual / self.n
        return _Moments(
            n=n,
            abs_error=self.abs_error + other.abs_error,
            predicted=self.predicted + other.predicted,
            actual=self.actual + other.actual,
            error_m2=m2(self.error_m2, other.error_m2, error_gap),
            actual_m2=m2(self.actual_m2, other.actual_m2, actual_gap),
            actual_min=min(self.actual_min, other.actual_min),
            actual_max=max(self.actual_max, other.actual_max),
            roas_n=self.roas_n + other.roas_n,
            roas_abs=self.roas_abs + other.roas_abs,
            roas_actual=self.roas_actual + other.roas_actual,
        )


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
        cur.execute("SET LOCAL jit = off")  # compiling costs more than this query runs
        # The planner cannot know that the groups are a handful (it counts one per video for
        # the rows without a platform) and would sort the whole window to group it.
        cur.execute("SET LOCAL enable_sort = off")
        cur.execute(_ONE_PASS, params)
        rows = cur.fetchall()
    left_out_counts = dict.fromkeys(range(5), 0)
    judged: dict[str, _Moments] = {}
    for row in rows:
        platform, kind, count = row[0], row[1], int(row[2])
        left_out_counts[kind] += count
        if kind in (_JUDGED, _INVALID_ROAS):
            judged[platform] = judged.get(platform, _Moments()) + _Moments.of_row(row)
    left_out = {
        "bad_rows": {
            "invalid_ctr": left_out_counts[_INVALID_CTR],
            "invalid_roas": left_out_counts[_INVALID_ROAS],
        },
        "immature_rows": left_out_counts[_IMMATURE],
        "no_impressions_rows": left_out_counts[_NO_IMPRESSIONS],
    }
    total = sum(judged.values(), _Moments())
    if not total.n:
        return replace(empty, **left_out)
    platforms = tuple(
        sorted(
            (
                PlatformAccuracy(
                    name,
                    m.n,
                    m.abs_error / m.n,
                    (m.predicted - m.actual) / m.n,
                )
                for name, m in judged.items()
            ),
            key=lambda p: (-p.n_samples, p.platform),
        )
    )
    n = total.n
    mean_error = (total.predicted - total.actual) / n
    mean_squared_error = total.error_m2 / n + mean_error**2
    ss_res = mean_squared_error * n
    # R² needs spread in the outcomes; with none it is undefined, not 0. (The spread of
    # equal values can come back as rounding dust, hence the min < max test.)
    ss_tot = total.actual_m2 if total.actual_min < total.actual_max else None
    return AccuracyReport(
        model_version=model_version,
        as_of=as_of,
        lookback_days=lookback_days,
        n_samples=n,
        mae=total.abs_error / n,
        rmse=math.sqrt(mean_squared_error),
        r2=float(1 - ss_res / ss_tot) if ss_tot else None,
        mean_predicted_ctr=total.predicted / n,
        mean_actual_ctr=total.actual / n,
        roas_samples=total.roas_n,
        roas_accuracy=(
            1 - total.roas_abs / total.roas_actual if total.roas_n and total.roas_actual else None
        ),
        roas_mae=total.roas_abs / total.roas_n if total.roas_n else None,
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
        small_batches(cur)
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
