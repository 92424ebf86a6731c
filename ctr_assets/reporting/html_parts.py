"""The pieces every part of the HTML report is made of: a value tagged with its JSON key.

Every figure the page shows is written by `value` or `shown_figure`, which tag it with
`data-key`, the path of the figure in the report's JSON (dots between keys and list
indices): the page shows what the JSON holds, and a test can check that it does.
"""

from __future__ import annotations

import html
from typing import Any

FORMATS = {
    "mae": lambda v: f"{v:.4f}",
    "ctr": lambda v: f"{v:.4f}",
    "r2": lambda v: f"{v:.3f}",
    "roas": lambda v: f"{v:.2f}",
    "pct": lambda v: f"{v:.1%}",
    "int": lambda v: f"{v:,}",
    "seconds": lambda v: f"{v:.1f} s",
    "lift": lambda v: f"{v:.2f}×",
    "signed": lambda v: f"{v:+.4f}",
    "text": str,
}


def lookup(document: dict[str, Any], key: str) -> Any:
    """The JSON value at a dotted path (list items by index)."""
    value: Any = document
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def value(document: dict[str, Any], key: str, kind: str = "text", absent: str = "n/a") -> str:
    """The value at `key`, formatted and tagged; `absent` (untagged) when it is null."""
    found = lookup(document, key)
    if found is None:
        return f'<span class="na">{escape(absent)}</span>'
    return f'<span data-key="{escape(key)}">{escape(FORMATS[kind](found))}</span>'


def shown_figure(document: dict[str, Any], key: str, kind: str, *, target: bool = False) -> str:
    """A figure (see `figures.Figure`): its value, its interval, its verdict; or, when it
    is unknown, the words that say why."""
    found = lookup(document, key)
    if found["value"] is None:
        why = escape(found["missing"])
        return f'<span class="missing" data-key="{escape(key)}.missing">{why}</span>'
    parts = [value(document, f"{key}.value", kind)]
    if found["lower"] is not None or found["upper"] is not None:
        upper = value(document, f"{key}.upper", kind, absent="no upper bound")
        parts.append(
            f'<span class="band">true {value(document, f"{key}.lower", kind)} to {upper}</span>'
        )
    if target and found["target"]:
        parts.append(
            f'<span class="target">target <span data-key="{escape(key)}.target">'
            f"{escape(found['target'])}</span></span>"
        )
    if found["verdict"]:
        parts.append(
            f'<span class="verdict {found["verdict"]}" data-key="{escape(key)}.verdict">'
            f"{escape(found['verdict'])}</span>"
        )
    return " ".join(parts)


def definition(document: dict[str, Any], name: str) -> str:
    words = escape(document["definitions"][name])
    return f'<p class="definition" data-key="definitions.{name}">{words}</p>'


def figure_list(d: dict[str, Any], rows: list[tuple[str, str, str, str]]) -> str:
    """Figures one a line, each with its definition: (name, JSON key, format, definition)."""
    items = "".join(
        f"<dt>{escape(name)}</dt><dd>{shown_figure(d, key, kind, target=True)}"
        f"{definition(d, defined)}</dd>"
        for name, key, kind, defined in rows
    )
    return f'<dl class="figures">{items}</dl>'


def table(headers: list[str], rows: list[list[str]], css: str = "") -> str:
    """A table; a row of one cell spans the whole width (a note under the row above)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        f'<tr class="note"><td colspan="{len(headers)}">{row[0]}</td></tr>'
        if len(row) == 1 < len(headers)
        else "<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def chart(name: str, svg: str | None, caption: str, missing: str) -> str:
    """An inline SVG chart, or the words that say why there is none."""
    if svg is None:
        return f'<p class="missing chart-missing" data-chart-missing="{name}">{escape(missing)}</p>'
    return (
        f'<figure class="chart" data-chart="{name}">{svg}'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


STYLE = """
:root { --ink: #1d2330; --muted: #5b6473; --line: #d9dde3; --met: #2e7d4f;
        --missed: #b3261e; --undecided: #a86b00; --blue: #2c6fbb; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); margin: 0 auto; max-width: 1080px; padding: 24px 28px 48px;
       font-size: 14px; line-height: 1.45; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 8px; padding-bottom: 4px;
     border-bottom: 2px solid var(--ink); }
h3 { font-size: 15px; margin: 22px 0 6px; }
.meta { color: var(--muted); margin: 0 0 10px; }
.notes { background: #fff7e6; border-left: 4px solid var(--undecided); padding: 8px 12px 8px 28px;
         margin: 10px 0; }
.cards { display: grid; grid-template-columns: repeat(3, 1fr); gap: 12px; margin: 16px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card .name { color: var(--muted); font-size: 12px; text-transform: uppercase;
              letter-spacing: .04em; }
.card .figure { font-size: 20px; font-weight: 600; margin: 4px 0; }
.card .figure .band, .card .figure .target { display: block; font-size: 12px; font-weight: 400;
                                              color: var(--muted); }
.card .figure .verdict { font-size: 12px; }
.definition { color: var(--muted); font-size: 12px; margin: 2px 0 8px; }
.band, .target { color: var(--muted); }
.verdict { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff;
           font-size: 11px; font-weight: 600; text-transform: uppercase; }
.verdict.met { background: var(--met); } .verdict.missed { background: var(--missed); }
.verdict.undecided { background: var(--undecided); }
.missing { color: var(--undecided); font-style: italic; }
.na { color: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: 6px 0 4px; font-size: 12.5px; }
th { text-align: left; color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--ink);
     padding: 4px 6px; }
td { border-bottom: 1px solid var(--line); padding: 4px 6px; vertical-align: top; }
td:first-child { white-space: nowrap; }
tr.note td { white-space: normal;  border-top: none; padding-top: 0; }
td.why, .why { color: var(--muted); font-size: 12px; }
table.compact td { padding: 2px 6px; }
figure.chart { margin: 10px 0; }
figure.chart svg { width: 100%; max-width: 960px; height: auto; }
figure.chart:is([data-chart="promotions"], [data-chart="weeks"], [data-chart="deciles"]) svg {
  max-width: 720px; }
figcaption { color: var(--muted); font-size: 12px; }
dl.figures { display: grid; grid-template-columns: 240px 1fr; gap: 4px 12px; margin: 8px 0; }
dl.figures dt { font-weight: 600; } dl.figures dd { margin: 0; }
details summary { cursor: pointer; color: var(--blue); margin: 8px 0; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line);
         padding-top: 8px; }
code { font-size: 12px; }
@media print { .cards { grid-template-columns: repeat(3, 1fr); } details { display: block; } }
"""
