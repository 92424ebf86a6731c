"""The weights of a frame in partitions equal those of the whole frame."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ctr_assets.ml.weights import Weighting, impression_cap, largest

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def _frame(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            # Ties included: many videos share a count.
            "impressions": rng.choice(
                np.r_[rng.integers(100, 10**6, size=rows // 3 + 1), [100, 500, 5000]], size=rows
            ),
            "created_at": pd.Series(
                [AS_OF - timedelta(hours=float(h)) for h in rng.uniform(0, 24 * 30, rows)]
            ),
        }
    )


@pytest.mark.parametrize("rows", [1, 2, 3, 57, 1000, 10_007])
@pytest.mark.parametrize("quantile", [0.5, 0.9, 0.99, 0.999, 1.0])
def test_the_cap_from_the_partitions_tails_is_numpys_quantile_of_the_whole(
    rows: int, quantile: float
) -> None:
    rng = np.random.default_rng(rows)
    impressions = _frame(rng, rows)["impressions"].to_numpy().astype(np.float64)
    cuts = np.sort(rng.integers(0, rows + 1, size=5))
    parts = np.split(impressions, cuts)  # some partitions empty
    size = Weighting(None, True, quantile).tail_size(rows)

    cap = impression_cap([largest(part, size) for part in parts], rows, quantile)

    if quantile == 1.0:
        assert cap is None
    else:
        assert cap == pytest.approx(np.quantile(impressions, quantile), rel=1e-12)


@pytest.mark.parametrize(
    "weighting",
    [
        Weighting(2.0),
        Weighting(None),
        Weighting(2.0, by_impressions=False),
        Weighting(7.0, True, 0.9),
    ],
    ids=["default", "impressions-only", "recency-only", "tighter-cap"],
)
def test_partition_weights_over_the_frame_figures_are_the_whole_frames(
    weighting: Weighting,
) -> None:
    rng = np.random.default_rng(7)
    frame = _frame(rng, 5000)
    parts = [frame.iloc[a:b] for a, b in [(0, 1200), (1200, 1201), (1201, 4000), (4000, 5000)]]
    rows = len(frame)
    cap = None
    if weighting.by_impressions:
        size = weighting.tail_size(rows)
        cap = impression_cap(
            [largest(p["impressions"].to_numpy(), size) for p in parts],
            rows,
            weighting.cap_quantile,
        )
    mean = 1.0
    if weighting.by_impressions:
        mean = sum(weighting.raw(p, AS_OF, cap).sum() for p in parts) / rows

    pieces = np.concatenate([weighting.raw(p, AS_OF, cap) / mean for p in parts])

    whole = weighting.of(frame, AS_OF)
    assert whole is not None
    np.testing.assert_allclose(pieces, whole, rtol=1e-12)
    if weighting.by_impressions:
        assert whole.mean() == pytest.approx(1.0)
    else:  # recency alone: 1 at as_of, halving with every half-life of age
        assert whole.max() <= 1.0
        assert whole.min() < 0.1


def test_no_rule_no_weights() -> None:
    frame = _frame(np.random.default_rng(1), 10)
    weighting = Weighting(None, by_impressions=False)
    assert not weighting.active
    assert weighting.of(frame, AS_OF) is None
