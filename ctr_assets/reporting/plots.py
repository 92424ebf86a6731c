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
    """Live MAE at each past check, with the threshold and the retrains marked."""
    figure, axes = plt.subplots(figsize=(7, 3.5))
    points = [
        (datetime.fromisoformat(r["as_of"]), r["mae"], r["status"])
        for r in records
        if r.get("mae") is not None
    ]
    if points:
        when, mae, _ = zip(*points, strict=True)
        axes.plot(when, mae, marker="o", markersize=3, label="champion MAE")
        retrained = [(w, m) for w, m, s in points if s == "retrained"]
        if retrained:
            axes.scatter(*zip(*retrained, strict=True), color="red", zorder=3, label="retrained")
    axes.axhline(threshold, color="grey", linestyle="--", label=f"threshold {threshold:g}")
    axes.set(ylabel="MAE of CTR", title="Accuracy at each check")
    axes.legend(loc="upper left")
    figure.autofmt_xdate()
    return _png(figure)
