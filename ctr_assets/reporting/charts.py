"""The accuracy report's charts as inline SVG, drawn from the report's JSON.

SVG text stays text (`svg.fonttype: none`) so a chart is small and sharp at any size, and
each chart salts its element ids with its name: several charts share one HTML page.
No date or creator block is written, so the same figures give the same file.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date, timedelta
from math import nan
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

STATUS_COLOURS = {
    "no_retrain_needed": "#4c956c",
    "insufficient_data": "#b8b8b8",
    "retrained": "#2c6fbb",
    "rejected": "#e0a030",
    "error": "#c0392b",
}
_BLUE, _GREY, _RED = "#2c6fbb", "#666666", "#c0392b"
# No date (the same figures give the same file) and no RDF block: its namespace and
# creator URLs are nothing a report needs, and mail scanners look twice at links.
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}


def _svg(name: str, draw: Callable[[plt.Figure], None], size: tuple[float, float]) -> str:
    with plt.rc_context(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": name,
            "svg.id": f"chart-{name}",
            "font.family": "sans-serif",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    ):
        figure = plt.figure(figsize=size)
        try:
            draw(figure)
            buffer = io.StringIO()
            figure.savefig(buffer, format="svg", bbox_inches="tight", metadata=_NO_METADATA)
        finally:
            plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline: no XML declaration or DOCTYPE


def _days(rows: list[dict[str, Any]]) -> list[date]:
    return [date.fromisoformat(row["day"]) for row in rows]


def _legend_outside(axes: plt.Axes, labels: list[str] | None = None) -> None:
    """The legend to the right of the plot, where it hides no data."""
    where = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "fontsize": 8, "frameon": False}
    if labels is None:
        axes.legend(**where)
    else:
        axes.legend(labels, **where)


def _date_axis(axes: plt.Axes) -> None:
    axes.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=8))
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))


def daily_mae(daily: list[dict[str, Any]], threshold: float) -> str | None:
    """The champion's MAE at each day's check, the interval of its true MAE, the noise
    floor, the threshold; retrains marked. None when no day has a figure."""
    judged = [row for row in daily if row["mae"] is not None]
    if not judged:
        return None

    def draw(figure: plt.Figure) -> None:
        axes = figure.add_subplot()
        days = _days(daily)  # a day without a figure breaks the lines: no figure is drawn

        def series(name: str) -> list[float]:
            return [nan if r[name] is None else r[name] for r in daily]

        # No upper bound: the errors sit below a perfect model's noise; shade up to the MAE.
        upper = [
            nan
            if r["mae_lower_bound"] is None
            else r["mae"]
            if r["mae_upper_bound"] is None
            else r["mae_upper_bound"]
            for r in daily
        ]
        axes.plot(days, series("mae"), "o-", ms=3, color=_BLUE, label="observed MAE")
        axes.fill_between(
            days,
            series("mae_lower_bound"),
            upper,
            color=_BLUE,
            alpha=0.2,
            label="true MAE, confidence interval",
        )
        axes.plot(
            days, series("noise_mae"), ":", color="black", label="noise floor (a perfect model)"
        )
        retrained = [r for r in judged if r["status"] == "retrained"]
        if retrained:
            axes.scatter(
                _days(retrained),
                [r["mae"] for r in retrained],
                color=_RED,
                zorder=3,
                label="retrained that day",
            )
        axes.axhline(threshold, color=_GREY, linestyle="--", label=f"threshold {threshold:g}")
        first, last = _days(daily)[0], _days(daily)[-1]
        axes.set_xlim(first, last)
        axes.set_ylim(bottom=0)
        axes.set_ylabel("MAE of CTR")
        _date_axis(axes)
        _legend_outside(axes)

    return _svg("daily-mae", draw, (9, 3.2))


def checks_per_day(days: list[dict[str, Any]]) -> str | None:
    """Checks per day, stacked by outcome. None when no check ran."""
    if not any(sum(row["statuses"].values()) for row in days):
        return None

    def draw(figure: plt.Figure) -> None:
        axes = figure.add_subplot()
        when = _days(days)
        bottom = [0] * len(days)
        for status, colour in STATUS_COLOURS.items():
            counts = [row["statuses"].get(status, 0) for row in days]
            if any(counts):
                axes.bar(when, counts, bottom=bottom, color=colour, label=status, width=0.8)
                bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        axes.set_ylabel("checks")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlim(when[0] - timedelta(days=1), when[-1] + timedelta(days=1))
        _date_axis(axes)
        _legend_outside(axes)

    return _svg("checks", draw, (9, 2.4))


def promotions(rows: list[dict[str, Any]], threshold: float) -> str | None:
    """Live MAE before and after each promotion, with the true MAE's interval."""
    usable = [r for r in rows if r["before"]["mae"]["value"] or r["after"]["mae"]["value"]]
    if not usable:
        return None

    def draw(figure: plt.Figure) -> None:
        axes = figure.add_subplot()
        for i, row in enumerate(usable):
            for offset, side, colour in ((-0.18, "before", _GREY), (0.18, "after", _BLUE)):
                mae = row[side]["mae"]
                if mae["value"] is None:
                    continue
                low = mae["lower"] if mae["lower"] is not None else mae["value"]
                high = mae["upper"] if mae["upper"] is not None else mae["value"]
                axes.bar(
                    i + offset,
                    mae["value"],
                    width=0.34,
                    color=colour,
                    label=f"{side} the promotion" if i == 0 else None,
                )
                axes.errorbar(
                    i + offset,
                    (low + high) / 2,
                    yerr=(high - low) / 2,
                    color="black",
                    capsize=3,
                    linewidth=1,
                )
        axes.axhline(threshold, color=_GREY, linestyle="--", label=f"threshold {threshold:g}")
        axes.set_xticks(range(len(usable)), [r["day"] for r in usable])
        axes.set_ylabel("live MAE of CTR")
        _legend_outside(axes)

    return _svg("promotions", draw, (7, 2.8))


def weekly_samples(weeks: list[dict[str, Any]]) -> str | None:
    """Predictions made and outcomes judged per week."""
    if not any(w["predictions"] or w["outcomes"] for w in weeks):
        return None

    def draw(figure: plt.Figure) -> None:
        axes = figure.add_subplot()
        x = range(len(weeks))
        axes.bar([i - 0.2 for i in x], [w["predictions"] for w in weeks], 0.4, color=_GREY)
        axes.bar([i + 0.2 for i in x], [w["outcomes"] for w in weeks], 0.4, color=_BLUE)
        labels = [
            w["monday"] + ("" if w["days_in_period"] == 7 else f"\n({w['days_in_period']} days)")
            for w in weeks
        ]
        axes.set_xticks(list(x), labels)
        axes.set_ylabel("per week")
        _legend_outside(axes, ["predictions made", "outcomes judged"])

    return _svg("weeks", draw, (7, 2.8))


def deciles(rows: list[dict[str, Any]], observed_ctr: float | None) -> str | None:
    """Observed CTR (bars) and mean actual ROAS (points) by predicted-CTR decile."""
    if not rows:
        return None

    def draw(figure: plt.Figure) -> None:
        axes = figure.add_subplot()
        x = [r["decile"] for r in rows]
        seen = [r for r in rows if r["observed_ctr"] is not None]
        axes.bar(
            [r["decile"] for r in seen],
            [r["observed_ctr"] for r in seen],
            color=_BLUE,
            label="observed CTR",
        )
        axes.plot(
            x, [r["mean_predicted_ctr"] for r in rows], "k_", ms=14, label="mean predicted CTR"
        )
        if observed_ctr is not None:
            axes.axhline(observed_ctr, color=_GREY, linestyle="--", label="average, all deciles")
        axes.set_xticks(x)
        axes.set_xlabel("predicted-CTR decile (10: ranked highest)")
        axes.set_ylabel("CTR")
        handles, labels = axes.get_legend_handles_labels()
        with_roas = [r for r in rows if r["observed_roas"] is not None]
        if with_roas:
            roas_axes = axes.twinx()
            roas_axes.plot(
                [r["decile"] for r in with_roas],
                [r["observed_roas"] for r in with_roas],
                "o",
                color=_RED,
                label="mean actual ROAS",
            )
            roas_axes.set_ylabel("ROAS")
            roas_axes.set_ylim(bottom=0)
            more_handles, more_labels = roas_axes.get_legend_handles_labels()
            handles, labels = handles + more_handles, labels + more_labels
        axes.legend(handles, labels, loc="upper left", fontsize=8, frameon=False)

    return _svg("deciles", draw, (7, 3.2))
