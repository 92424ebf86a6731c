"""The four sections of the HTML report: accuracy, learning, reliability, ranking value."""

from __future__ import annotations

from typing import Any

from ctr_assets.reporting import charts
from ctr_assets.reporting.html_parts import (
    chart,
    definition,
    escape,
    figure_list,
    lookup,
    shown_figure,
    table,
    value,
)


def accuracy(d: dict[str, Any]) -> str:
    a = d["accuracy"]
    threshold = d["settings"]["mae_threshold"]
    headline = figure_list(
        d,
        [
            ("CTR MAE", "accuracy.headline.ctr_mae", "mae", "ctr_mae"),
            ("Noise floor", "accuracy.headline.noise_mae", "mae", "noise_mae"),
            ("CTR MAE, latest check", "accuracy.headline.ctr_mae_latest", "mae", "ctr_mae_latest"),
            ("R²", "accuracy.headline.r2", "r2", "r2"),
            ("ROAS accuracy", "accuracy.headline.roas_accuracy", "pct", "roas_accuracy"),
            ("Judged predictions", "accuracy.headline.n_samples", "int", "n_samples"),
            ("With ROAS", "accuracy.headline.roas_samples", "int", "roas_samples"),
        ],
    )
    latest = (
        f"<p>The latest judged check judged {value(d, 'accuracy.latest_day')}, champion "
        f"{value(d, 'accuracy.latest_champion')}.</p>"
        if a["latest_day"]
        else ""
    )
    gaps = a["days_without_check"]
    no_check = (
        "<p>Days with no check: "
        + ", ".join(value(d, f"accuracy.days_without_check.{i}") for i in range(len(gaps)))
        + ".</p>"
        if gaps
        else "<p>Every day of the period had a check.</p>"
    )
    daily_rows = [
        [
            value(d, f"accuracy.daily.{i}.day"),
            value(d, f"accuracy.daily.{i}.checks", "int"),
            value(d, f"accuracy.daily.{i}.status", absent="—"),
            value(d, f"accuracy.daily.{i}.n_samples", "int"),
            value(d, f"accuracy.daily.{i}.mae", "mae"),
            value(d, f"accuracy.daily.{i}.mae_lower_bound", "mae")
            + " to "
            + value(d, f"accuracy.daily.{i}.mae_upper_bound", "mae"),
            value(d, f"accuracy.daily.{i}.noise_mae", "mae"),
            value(d, f"accuracy.daily.{i}.note", absent=""),
        ]
        for i in range(len(a["daily"]))
    ]
    return (
        '<section id="accuracy"><h2>1. Accuracy over the period</h2>'
        + headline
        + latest
        + chart(
            "daily-mae",
            charts.daily_mae(a["daily"], threshold),
            "The champion's MAE at each day's check, the interval of its true MAE and the "
            "noise floor, against the threshold.",
            "No day of the period has a judged MAE: no check found enough judged predictions "
            "of a champion.",
        )
        + definition(d, "daily")
        + no_check
        + "<details><summary>Every day</summary>"
        + table(
            ["day", "checks", "outcome", "judged", "MAE", "true MAE", "noise floor", "note"],
            daily_rows,
            "compact",
        )
        + "</details>"
        + "<h3>Per platform</h3>"
        + _groups(d, "accuracy.by_platform", "platform")
        + definition(d, "by_platform")
        + "<h3>Per model that served</h3>"
        + _groups(d, "accuracy.by_model", "model")
        + definition(d, "by_model")
        + "</section>"
    )


def _groups(d: dict[str, Any], key: str, label: str) -> str:
    rows = []
    for i, group in enumerate(lookup(d, key)):
        k = f"{key}.{i}"
        name = value(d, f"{k}.name")
        if group["first_day"]:
            name += (
                f'<div class="why">{value(d, f"{k}.predictions", "int")} predictions, '
                f"{value(d, f'{k}.first_day')} to {value(d, f'{k}.last_day')}</div>"
            )
        rows.append(
            [
                name,
                value(d, f"{k}.figures.n_samples", "int"),
                shown_figure(d, f"{k}.figures.mae", "mae"),
                shown_figure(d, f"{k}.figures.noise_mae", "mae"),
                shown_figure(d, f"{k}.figures.r2", "r2"),
                shown_figure(d, f"{k}.figures.roas_accuracy", "pct"),
            ]
        )
    if not rows:
        return '<p class="missing">No judged prediction in the period.</p>'
    return table([label, "judged", "MAE", "noise floor", "R²", "ROAS accuracy"], rows)


def learning(d: dict[str, Any]) -> str:
    learning = d["learning"]
    trainings = []
    for i in range(len(learning["trainings"])):
        k = f"learning.trainings.{i}"
        trainings.append(
            [
                value(d, f"{k}.day"),
                value(d, f"{k}.trigger"),
                value(d, f"{k}.status"),
                value(d, f"{k}.challenger", absent="none"),
                value(d, f"{k}.mae_before", "mae") + " → " + value(d, f"{k}.mae_after", "mae"),
                value(d, f"{k}.r2_before", "r2") + " → " + value(d, f"{k}.r2_after", "r2"),
                value(d, f"{k}.improvement_lower", "signed")
                + " / "
                + value(d, f"{k}.improvement_needed", "mae"),
                value(d, f"{k}.training_rows", "int"),
                value(d, f"{k}.training_seconds", "seconds"),
            ]
        )
        reason = escape(learning["trainings"][i]["reason"])
        trainings.append(
            [f'<span class="why">why: <span data-key="{k}.reason">{reason}</span></span>']
        )
    promotions = [
        [
            value(d, f"learning.promotions.{i}.day"),
            value(d, f"learning.promotions.{i}.version"),
            value(d, f"learning.promotions.{i}.previous", absent="none"),
            shown_figure(d, f"learning.promotions.{i}.before.mae", "mae"),
            shown_figure(d, f"learning.promotions.{i}.after.mae", "mae"),
            value(d, f"learning.promotions.{i}.mae_change", "signed"),
        ]
        for i in range(len(learning["promotions"]))
    ]
    weeks = [
        [
            value(d, f"learning.weeks.{i}.monday"),
            value(d, f"learning.weeks.{i}.days_in_period", "int"),
            value(d, f"learning.weeks.{i}.predictions", "int"),
            value(d, f"learning.weeks.{i}.outcomes", "int"),
            value(d, f"learning.weeks.{i}.purchase_signals", "int"),
        ]
        for i in range(len(learning["weeks"]))
    ]
    threshold = d["settings"]["mae_threshold"]
    return (
        '<section id="learning"><h2>2. Learning</h2><h3>Every retrain</h3>'
        + (
            table(
                [
                    "day",
                    "trigger",
                    "outcome",
                    "challenger",
                    "hold-out MAE before → after",
                    "hold-out R² before → after",
                    "advantage (lower bound) / needed",
                    "training rows",
                    "training time",
                ],
                trainings,
                "trainings",
            )
            if trainings
            else '<p class="missing">No challenger was trained in the period.</p>'
        )
        + definition(d, "trainings")
        + definition(d, "improvement_lower")
        + "<h3>Accuracy before and after each promotion, on live outcomes</h3>"
        + (
            table(
                ["day", "promoted", "served before", "live MAE before", "live MAE after", "change"],
                promotions,
            )
            if promotions
            else '<p class="missing">No model was promoted in the period.</p>'
        )
        + chart(
            "promotions",
            charts.promotions(learning["promotions"], threshold),
            "Live MAE before (grey) and after (blue) each promotion, with the true MAE's interval.",
            "No promotion in the period has live outcomes to compare yet.",
        )
        + definition(d, "promotions")
        + "<h3>Samples per week</h3>"
        + table(["week of", "days", "predictions", "outcomes judged", "purchase signals"], weeks)
        + chart(
            "weeks",
            charts.weekly_samples(learning["weeks"]),
            "Predictions made and outcomes judged per week.",
            "No prediction was made and no outcome was judged in the period.",
        )
        + definition(d, "weeks")
        + "</section>"
    )


def reliability(d: dict[str, Any]) -> str:
    r = d["reliability"]
    statuses = list(r["by_status"])
    by_trigger = [
        [escape(trigger)]
        + [value(d, f"reliability.by_trigger.{trigger}.{s}", "int") for s in statuses]
        for trigger in r["by_trigger"]
    ]
    by_trigger.append(
        ["<b>all</b>"] + [value(d, f"reliability.by_status.{s}", "int") for s in statuses]
    )
    errors = [
        [
            value(d, f"reliability.errors.{i}.day"),
            value(d, f"reliability.errors.{i}.trigger"),
            f'<span class="why" data-key="reliability.errors.{i}.reason">'
            f"{escape(error['reason'])}</span>",
        ]
        for i, error in enumerate(r["errors"])
    ]
    return (
        '<section id="reliability"><h2>3. Reliability</h2>'
        + figure_list(
            d,
            [
                ("Checks", "reliability.checks", "int", "checks"),
                ("Days with a check", "reliability.days_checked", "int", "days_checked"),
                (
                    "Retrain success rate",
                    "reliability.retrain_success_rate",
                    "pct",
                    "retrain_success_rate",
                ),
                (
                    "Median training time",
                    "reliability.median_training_seconds",
                    "seconds",
                    "median_training_seconds",
                ),
                (
                    "Worst training time",
                    "reliability.worst_training_seconds",
                    "seconds",
                    "worst_training_seconds",
                ),
                ("Purchase signals", "reliability.purchase_signals", "int", "purchase_signals"),
            ],
        )
        + "<h3>Checks by trigger and outcome</h3>"
        + table(["trigger", *statuses], by_trigger)
        + definition(d, "by_trigger")
        + chart(
            "checks",
            charts.checks_per_day(r["checks_by_day"]),
            "Checks per day, by outcome.",
            "No check ran in the period.",
        )
        + "<h3>Errors</h3>"
        + (
            table(["day", "trigger", "reason"], errors)
            if errors
            else "<p>No check failed in the period.</p>"
        )
        + definition(d, "errors")
        + "</section>"
    )


def ranking(d: dict[str, Any]) -> str:
    ranking = d["ranking"]
    rows = [
        [
            value(d, f"ranking.deciles.{i}.decile", "int"),
            value(d, f"ranking.deciles.{i}.n_samples", "int"),
            value(d, f"ranking.deciles.{i}.mean_predicted_ctr", "ctr"),
            value(d, f"ranking.deciles.{i}.observed_ctr", "ctr"),
            value(d, f"ranking.deciles.{i}.roas_samples", "int"),
            value(d, f"ranking.deciles.{i}.observed_roas", "roas"),
        ]
        for i in range(len(ranking["deciles"]))
    ]
    return (
        '<section id="ranking"><h2>4. Ranking value</h2>'
        "<p>Do the videos the model ranks highest really earn more? Measured on the "
        "period's outcomes; no return-on-investment or cost-saved figure is given, as the "
        "tables hold none.</p>"
        + figure_list(
            d,
            [
                (
                    "Top-decile CTR lift",
                    "ranking.top_decile_ctr_lift",
                    "lift",
                    "top_decile_ctr_lift",
                ),
                (
                    "Top-decile ROAS lift",
                    "ranking.top_decile_roas_lift",
                    "lift",
                    "top_decile_roas_lift",
                ),
                ("Observed CTR, all", "ranking.observed_ctr", "ctr", "observed_ctr"),
                ("Mean actual ROAS, all", "ranking.observed_roas", "roas", "observed_roas"),
            ],
        )
        + chart(
            "deciles",
            charts.deciles(ranking["deciles"], ranking["observed_ctr"]["value"]),
            "Observed CTR (bars) and mean actual ROAS (points) by predicted-CTR decile.",
            "Too few judged predictions to rank: see the figures above.",
        )
        + (
            table(
                [
                    "decile",
                    "judged",
                    "mean predicted CTR",
                    "observed CTR",
                    "with ROAS",
                    "mean actual ROAS",
                ],
                rows,
            )
            if rows
            else ""
        )
        + definition(d, "deciles")
        + "</section>"
    )
