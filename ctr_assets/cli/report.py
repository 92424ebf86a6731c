"""`ctr-assets report`: the accuracy report (HTML and JSON) of asset `accuracy_report`."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from pathlib import Path

import click

from ctr_assets import settings
from ctr_assets.cli.arguments import DAYS
from ctr_assets.cli.checks import _existing_schema
from ctr_assets.db.schema import open_database


def schema_name(ctx: click.Context, param: click.Parameter, text: str | None) -> str | None:
    """`--schema`: a plain lower-case identifier (checked before the database is opened)."""
    if text is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", text):
        raise click.BadParameter(f"{text!r} is not a schema name such as ctr_demo")
    return text


def html_file(ctx: click.Context, param: click.Parameter, text: str | None) -> Path | None:
    """`--out`: the HTML file to write, in a folder that exists (its JSON goes beside it)."""
    if text is None:
        return None
    path = Path(text).expanduser()
    if path.suffix.lower() == ".json":
        raise click.BadParameter(
            f"{text!r} names the JSON file; --out names the HTML page (its .json goes beside it)"
        )
    if path.is_dir():
        raise click.BadParameter(f"{text!r} is a folder; name the HTML file to write")
    if not path.resolve().parent.is_dir():
        raise click.BadParameter(f"the folder of {text!r} does not exist")
    return path


@click.command()
@click.option("--days", type=DAYS, default=30, show_default=True, help="Days to report on.")
@click.option(
    "--end",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Date the last reported day ends (UTC midnight, as for backtest); default: the end "
    "of today when a check has judged it, else of yesterday.",
)
@click.option(
    "--out",
    default=None,
    callback=html_file,
    metavar="FILE",
    help="HTML file to write; the JSON goes beside it (.json). Default: "
    "CTR_HOME/reports/accuracy-report[-SCHEMA]-LASTDAY.html.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the report's JSON instead of a summary."
)
@click.option(
    "--schema",
    default=None,
    callback=schema_name,
    help="Report on the tables of this schema (ctr_demo: the world `ctr-assets demo` lives in).",
)
def report(
    days: int, end: datetime | None, out: Path | None, as_json: bool, schema: str | None
) -> None:
    """Writes the accuracy report of the last DAYS days: one self-contained HTML page (it
    opens from an e-mail attachment) and the same figures as JSON; prints the headline."""
    from ctr_assets.orchestration.report_asset import report_settings
    from ctr_assets.orchestration.resources import RetrainSettings
    from ctr_assets.reporting.accuracy_report import (
        build_report,
        default_last_day,
        report_file_name,
        save_report,
    )
    from ctr_assets.reporting.history import Period

    if end is not None and (end.date() - date(1970, 1, 1)).days < days:
        raise click.BadParameter(
            f"{days} days before {end:%Y-%m-%d} is before 1970", param_hint="'--end'"
        )
    database = open_database()
    if schema is not None:
        database = _existing_schema(database, schema)
    last_day = end.date() - timedelta(days=1) if end else default_last_day(database)
    period = Period.ending(last_day, days)
    document = build_report(database, period, report_settings(RetrainSettings()))
    path = out or settings.ctr_home() / "reports" / report_file_name(period, schema)
    html, json_path = save_report(document, path)
    if as_json:
        click.echo(json.dumps(document.as_json_dict(), indent=2))
        return
    where = f" in schema {schema}" if schema else ""
    click.echo(
        f"accuracy report of {period.first_day} to {period.last_day} ({period.days} days){where}"
    )
    for line in summary_lines(document.as_json_dict()):
        click.echo(f"  {line}")
    click.echo(f"wrote {html}")
    click.echo(f"wrote {json_path}")


def summary_lines(document: dict) -> list[str]:
    """The headline figures in words, one a line."""
    from ctr_assets.reporting.html_parts import FORMATS

    def said(figure: dict, kind: str) -> str:
        if figure["value"] is None:
            return f"unknown ({figure['missing']})"
        text = FORMATS[kind](figure["value"])
        if figure["lower"] is not None:
            upper = FORMATS[kind](figure["upper"]) if figure["upper"] is not None else "n/a"
            text += f" (true {FORMATS[kind](figure['lower'])}-{upper})"
        if figure["verdict"]:
            text += f", target {figure['target']}: {figure['verdict']}"
        return text

    a, r, k = document["accuracy"]["headline"], document["reliability"], document["ranking"]
    return [
        *document["notes"],
        f"CTR MAE over the period: {said(a['ctr_mae'], 'mae')}",
        f"CTR MAE at the latest check: {said(a['ctr_mae_latest'], 'mae')}",
        f"R²: {said(a['r2'], 'r2')}",
        f"ROAS accuracy: {said(a['roas_accuracy'], 'pct')}",
        f"checks: {said(r['checks'], 'int')}, errors: {len(r['errors'])}, "
        f"retrain success rate: {said(r['retrain_success_rate'], 'pct')}, "
        f"median training time: {said(r['median_training_seconds'], 'seconds')}",
        f"top-decile CTR lift: {said(k['top_decile_ctr_lift'], 'lift')}, "
        f"ROAS lift: {said(k['top_decile_roas_lift'], 'lift')}",
    ]
