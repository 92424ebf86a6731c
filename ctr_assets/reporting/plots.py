"""PNG plots: predicted vs actual CTR on the hold-out, and accuracy over past checks."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt
import pandas as pd


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def holdout_scatter_png(holdout: pd.DataFrame) -> bytes:
    """Challenger (and champion, when there was one) predictions against actual CTR."""
    figure, axes = plt.subplots(figsize=(5.5, 5))
    top = float(max(holdout["ctr"].max(), holdout["challenger"].max(), 0.01)) * 1.05
    if "champion" in holdout:
        axes.scatter(holdout["ctr"], holdout["champion"], s=8, alpha=0.5, label="champion")
    axes.scatter(holdout["ctr"], holdout["challenger"], s=8, alpha=0.6, label="challenger")
    axes.plot([0, top], [0, top], color="grey", linewidth=1, label="perfect")
    axes.set(xlim=(0, top), ylim=(0, top), xlabel="actual CTR", ylabel="predicted CTR")
    axes.set_title(f"Hold-out: {len(holdout)} videos")
    axes.legend(loc="upper left")
    return _png(figure)


def accuracy_trend_png(records: list[dict[str, Any]], threshold: float) -> bytes:
    """At each past check: the observed MAE, the confidence band of the true MAE, and the
    noise floor (what a perfect model would show), against the threshold; retrains marked.
    The observed MAE above the threshold while the band stays under it is label noise."""
    figure, axes = plt.subplots(figsize=(7, 3.5))
    points = [(datetime.fromisoformat(r["as_of"]), r) for r in records if r.get("mae") is not None]
    if points:
        when = [w for w, _ in points]
        axes.plot(
            when, [r["mae"] for _, r in points], marker="o", markersize=3, label="observed MAE"
        )
        banded = [(w, r) for w, r in points if r.get("mae_lower_bound") is not None]
        if banded:
            axes.fill_between(
                [w for w, _ in banded],
                [r["mae_lower_bound"] for _, r in banded],
                [
                    r["mae_upper_bound"]
                    if r.get("mae_upper_bound") is not None
                    else r["mae_lower_bound"]
                    for _, r in banded
                ],
                alpha=0.25,
                label="true MAE, confidence band",
            )
        floored = [(w, r["noise_mae"]) for w, r in points if r.get("noise_mae") is not None]
        if floored:
            axes.plot(
                *zip(*floored, strict=True),
                linestyle=":",
                color="black",
                label="noise floor (perfect model)",
            )
        retrained = [(w, r["mae"]) for w, r in points if r["status"] == "retrained"]
        if retrained:
            axes.scatter(*zip(*retrained, strict=True), color="red", zorder=3, label="retrained")
    axes.axhline(threshold, color="grey", linestyle="--", label=f"threshold {threshold:g}")
    axes.set(ylabel="MAE of CTR", title="Accuracy at each check")
    axes.legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    return _png(figure)
