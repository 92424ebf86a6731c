"""The accuracy report as one self-contained HTML page, rendered from its JSON.

Inline CSS and inline SVG charts, no script, nothing fetched from the network: the file
opens the same from a disk, a browser's download folder or an e-mail attachment. Every
figure shown is tagged with its JSON key (see `html_parts`).
"""

from __future__ import annotations

from typing import Any

from ctr_assets.reporting import html_sections
from ctr_assets.reporting.html_parts import STYLE, escape, shown_figure, value

HEADLINE = (  # key, name, format
    ("accuracy.headline.ctr_mae", "CTR MAE over the period", "mae"),
    ("accuracy.headline.ctr_mae_latest", "CTR MAE at the latest check", "mae"),
    ("accuracy.headline.r2", "R² over the period", "r2"),
    ("accuracy.headline.roas_accuracy", "ROAS accuracy over the period", "pct"),
    ("reliability.retrain_success_rate", "Retrain success rate", "pct"),
    ("ranking.top_decile_ctr_lift", "Top-decile CTR lift", "lift"),
)


def render_html(document: dict[str, Any]) -> str:
    """The page of a report's JSON (`AccuracyReportDocument.as_json_dict()`)."""
    body = "".join(
        (
            _header(document),
            _summary(document),
            html_sections.accuracy(document),
            html_sections.learning(document),
            html_sections.reliability(document),
            html_sections.ranking(document),
            _footer(document),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(document['title'])}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _header(d: dict[str, Any]) -> str:
    champion = (
        f"Champion now: {value(d, 'champion')}, since {value(d, 'champion_since')}."
        if d["champion"]
        else "No champion yet."
    )
    notes = "".join(f'<li data-key="notes.{i}">{escape(n)}</li>' for i, n in enumerate(d["notes"]))
    return (
        f'<header><h1 data-key="title">{escape(d["title"])}</h1>'
        f'<p class="meta">{value(d, "period.days", "int")} days, '
        f"{value(d, 'period.first_day')} to {value(d, 'period.last_day')} (UTC). "
        f"Made {value(d, 'generated_at')}. {champion}</p>"
        + (f'<ul class="notes">{notes}</ul>' if notes else "")
        + "</header>"
    )


def _summary(d: dict[str, Any]) -> str:
    cards = "".join(
        f'<div class="card"><div class="name">{escape(name)}</div>'
        f'<div class="figure">{shown_figure(d, key, kind, target=True)}</div></div>'
        for key, name, kind in HEADLINE
    )
    return f'<section id="summary"><h2>Summary</h2><div class="cards">{cards}</div></section>'


def _footer(d: dict[str, Any]) -> str:
    s = "settings"
    return (
        "<footer>Made by <code>ctr-assets report</code> (asset <code>accuracy_report</code>) "
        f"from the application database. Settings: threshold "
        f"{value(d, f'{s}.mae_threshold', 'mae')}, accuracy window "
        f"{value(d, f'{s}.lookback_days', 'int')} days, confidence "
        f"{value(d, f'{s}.confidence', 'pct')}, at least "
        f"{value(d, f'{s}.min_samples', 'int')} judged predictions to judge a champion, "
        f"outcomes judged after {value(d, f'{s}.min_outcome_impressions', 'int')} "
        "impressions. A figure shown as n/a or in words could not be computed from the "
        "tables; none is shown as 0 in its place.</footer>"
    )
