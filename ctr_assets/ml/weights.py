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

import math
from dataclasses import dataclass
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
    """Per-row weights: impressions (capped) times recency, scaled to mean 1; recency alone
    when impressions are off; None when neither applies (every video weighs the same)."""
    recency = recency_weights(frame["created_at"], as_of, half_life_days)
    if not by_impressions:
        # Recency alone keeps its own scale (1 for a video created at `as_of`), as it always
        # had: the same data and seed give the same model as before impression weights.
        return recency
    weights = impression_weights(frame["impressions"].to_numpy(), cap_quantile)
    if recency is not None:
        weights = weights * recency
    return weights / weights.mean() if len(weights) else weights


@dataclass(frozen=True)
class Weighting:
    """How a check weighs its training videos: recency (`half_life_days`, None: off) times,
    when `by_impressions`, impressions capped at their `cap_quantile` quantile; scaled to a
    mean of 1 over the frame.

    In process the frame is whole and `video_weights` applies the rule at once. On a cluster
    the frame is in partitions: each computes its raw weights against the frame's cap
    (`impression_cap` of the partitions' largest impressions) and, with impressions, divides
    by the frame's mean (the partitions' sums), so both modes give every video the same
    weight.
    """

    half_life_days: float | None
    by_impressions: bool = True
    cap_quantile: float = IMPRESSION_CAP_QUANTILE

    @property
    def active(self) -> bool:
        return self.by_impressions or bool(self.half_life_days)

    def of(self, frame: pd.DataFrame, as_of: datetime) -> np.ndarray | None:
        """The weights of a whole frame (None: every video weighs the same)."""
        return video_weights(
            frame, as_of, self.half_life_days, self.by_impressions, self.cap_quantile
        )

    def tail_size(self, rows: int) -> int:
        """How many of the largest impressions of `rows` decide their cap quantile."""
        if not rows:
            return 0
        return rows - math.floor((rows - 1) * self.cap_quantile)

    def raw(self, frame: pd.DataFrame, as_of: datetime, cap: float | None) -> np.ndarray:
        """Unscaled weights of one partition, against the whole frame's `cap`."""
        weights = np.ones(len(frame))
        if self.by_impressions:
            counts = impression_weights(frame["impressions"].to_numpy(), 1.0)
            weights = counts if cap is None else np.minimum(counts, cap)
        recency = recency_weights(frame["created_at"], as_of, self.half_life_days)
        return weights if recency is None else weights * recency


def largest(values: np.ndarray, k: int) -> np.ndarray:
    """The `k` largest of `values` (all of them when fewer), in no particular order."""
    values = np.asarray(values, dtype=np.float64)
    if k >= len(values):
        return values
    if k <= 0:
        return values[:0]
    return np.partition(values, len(values) - k)[len(values) - k :]


def impression_cap(tails: list[np.ndarray], rows: int, cap_quantile: float) -> float | None:
    """The `cap_quantile` quantile of impressions over `rows` videos, from each partition's
    `largest(impressions, Weighting(...).tail_size(rows))`: exactly `np.quantile` of the
    whole column (linear interpolation), since the two order statistics it reads are among
    the frame's `tail_size` largest, and those are the largest of the partitions' tails."""
    if not rows or cap_quantile == 1.0:
        return None
    size = Weighting(None, True, cap_quantile).tail_size(rows)
    tail = np.sort(np.concatenate(tails))[-size:]  # the frame's order statistics rows-size..
    first = rows - size
    position = (rows - 1) * cap_quantile
    below = math.floor(position)
    low = tail[below - first]
    high = tail[min(below + 1, rows - 1) - first]
    return float(low + (position - below) * (high - low))
