"""The ranking-value section: do the videos the model ranks highest really do better?

Measured, not invented: observed CTR and ROAS by predicted-CTR decile over the period's
judged predictions, and the top decile's lift over the average. No ROI or "cost saved"
figure: the tables hold no costs the model saved.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctr_assets.db.connection import Database
from ctr_assets.reporting import history
from ctr_assets.reporting.figures import Figure, ReportSettings, figure, ratio
from ctr_assets.reporting.history import Decile, Period

MIN_RANKED = 100  # judged outcomes needed to cut ten deciles of at least 10
MIN_TOP_ROAS = 10  # ROAS outcomes the top decile needs for its ROAS lift


@dataclass(frozen=True)
class RankingSection:
    deciles: list[Decile]
    observed_ctr: Figure  # over every judged prediction of the period
    observed_roas: Figure
    top_decile_ctr_lift: Figure
    top_decile_roas_lift: Figure


def ranking_section(db: Database, period: Period, settings: ReportSettings) -> RankingSection:
    rows = history.deciles(db, period, settings.maturity)
    n = sum(d.n_samples for d in rows)
    few = f"{n} judged predictions in the period: ranking needs {MIN_RANKED} (10 a decile)"
    if n < MIN_RANKED:
        missing = figure(None, few)
        return RankingSection([], missing, missing, missing, missing)
    impressions = sum(d.impressions for d in rows)
    clicks = sum(d.clicks for d in rows)
    observed_ctr = ratio(clicks, impressions)
    roas_n = sum(d.roas_samples for d in rows)
    observed_roas = (
        sum(d.observed_roas * d.roas_samples for d in rows if d.observed_roas is not None) / roas_n
        if roas_n
        else None
    )
    top = rows[-1]
    no_roas = "no judged outcome of the period carries an actual ROAS"
    if roas_n and top.roas_samples < MIN_TOP_ROAS:
        top_roas_missing = (
            f"only {top.roas_samples} outcomes of the top decile carry an actual ROAS "
            f"({MIN_TOP_ROAS} needed)"
        )
    else:
        top_roas_missing = no_roas if not roas_n else "the mean actual ROAS is 0"
    top_roas = top.observed_roas if top.roas_samples >= MIN_TOP_ROAS else None
    return RankingSection(
        deciles=rows,
        observed_ctr=figure(observed_ctr, "the judged outcomes have no impressions"),
        observed_roas=figure(observed_roas, no_roas),
        top_decile_ctr_lift=figure(
            ratio(top.observed_ctr, observed_ctr), "no click was observed in the period"
        ),
        top_decile_roas_lift=figure(ratio(top_roas, observed_roas), top_roas_missing),
    )
