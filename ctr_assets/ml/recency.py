"""Recency weights: the world drifts, so recent videos say more about tomorrow.

A video's weight halves every `half_life_days` of age. Training and the hold-out
comparison use the same weights, so a challenger is judged on the world it was fitted to
describe: the world as it is now, not as it was a month ago.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd


def recency_weights(
    created_at: pd.Series, as_of: datetime, half_life_days: float | None
) -> np.ndarray | None:
    """Per-row weights in (0, 1], or None (all equal) when `half_life_days` is unset or 0."""
    if not half_life_days:
        return None
    if half_life_days < 0:
        raise ValueError(f"half_life_days must be positive, got {half_life_days}")
    created = pd.to_datetime(created_at, utc=True)
    age_days = ((pd.Timestamp(as_of) - created).dt.total_seconds() / 86_400).to_numpy()
    # Unknown or future creation times count as new.
    age_days = np.nan_to_num(age_days, nan=0.0).clip(0.0, None)
    return np.power(0.5, age_days / half_life_days)


def horizon_days(half_life_days: float | None, half_lives: float | None) -> float | None:
    """Days the training read reaches back from the newest video: `half_lives` half-lives
    (None, every video, when either is unset or 0: without recency all videos count)."""
    return half_life_days * half_lives if half_life_days and half_lives else None
