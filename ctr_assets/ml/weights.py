"""What each video weighs, in training and in the hold-out comparison alike.

A video's observed CTR is clicks out of impressions: its noise shrinks with its
impressions (binomial variance p(1-p)/n). With the logistic objective on the CTR, weighting
each video by its impressions makes the loss the binomial log-likelihood of its clicks, so
a video seen 100,000 times counts as the 100,000 trials it is, and one seen 100 times as
100. A few giant videos would then decide the fit alone, so impressions are capped at a
high quantile of the frame's (`impression_cap_quantile`; the cap is a tempered
likelihood, not a change of target). Recency multiplies in (`ctr_assets.ml.recency`).

The weights are scaled to a mean of 1 over the frame, so that weight-sensitive settings
(XGBoost's `min_child_weight`) keep the meaning they have with unweighted rows.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from ctr_assets.ml.recency import recency_weights

IMPRESSION_CAP_QUANTILE = 0.99


def impression_weights(
    impressions: np.ndarray, cap_quantile: float = IMPRESSION_CAP_QUANTILE
) -> np.ndarray:
    """Impressions as weights, capped at their `cap_quantile` quantile (1.0: no cap)."""
    if not 0.0 < cap_quantile <= 1.0:
        raise ValueError(f"cap_quantile must lie in (0, 1], got {cap_quantile}")
    counts = np.asarray(impressions, dtype=np.float64)
    if len(counts) and not (counts > 0).all():
        raise ValueError(
            f"{int(np.count_nonzero(~(counts > 0)))} rows have no positive impressions; "
            "a training row needs impressions to have a CTR"
        )
    if not len(counts) or cap_quantile == 1.0:
        return counts
    return np.minimum(counts, np.quantile(counts, cap_quantile))


def video_weights(
    frame: pd.DataFrame,
    as_of: datetime,
    half_life_days: float | None,
    by_impressions: bool = True,
    cap_quantile: float = IMPRESSION_CAP_QUANTILE,
) -> np.ndarray | None:
    """Per-row weights with mean 1: impressions (capped) times recency; None when neither
    applies (every video weighs the same)."""
    recency = recency_weights(frame["created_at"], as_of, half_life_days)
    if not by_impressions:
        return None if recency is None else recency / recency.mean()
    weights = impression_weights(frame["impressions"].to_numpy(), cap_quantile)
    if recency is not None:
        weights = weights * recency
    return weights / weights.mean() if len(weights) else weights
