"""Checks: `ctr-assets check-retrain` runs one now, `ctr-assets backtest` replays the gate
over the stored predictions."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from ctr_assets.cli.arguments import DAYS, GATE, http_url, set_by_user
from ctr_assets.cli.errors import EXPECTED_FAILURES, expected_failure
from ctr_assets.db.schema import open_database


@click.command("check-retrain")
@click.option(
    "--trigger",
    type=click.Choice(["manual", "schedule", "purchase_signals", "accuracy_sensor"]),
    default="manual",
    show_default=True,
)
@click.option(
    "--webserver",
    default=None,
    callback=http_url,
    help="Dagster webserver to launch on (default DAGSTER_WEBSERVER_URL or "
    "http://127.0.0.1:3000); when none answers, the check runs in this process.",
)
@click.option("--in-process", is_flag=True, help="Run here even if a webserver answers.")
@GATE
@click.pass_context
def check_retrain(
    ctx: click.Context, trigger: str, webserver: str | None, in_process: bool, gate: str
) -> None:
    """Runs one retrain check now and prints its decision record as JSON.

    Exits 0 for every status but `error`, which exits 1 (with the reason on stderr).
    """
    # Through the webserver this process imports neither Dagster nor the code location:
    # the run does the work, and the command starts in a fraction of the time.
    from ctr_assets.orchestration.remote import (
        run_check_on_webserver,
        webserver_answers,
        webserver_url,
    )
    from ctr_assets.retraining.record import decision_for_run

    verbose = bool(ctx.find_root().params.get("verbose"))
    # Only a gate asked for on the command line overrides the code location's settings.
    overrides = {"gate": gate} if set_by_user("gate") else None
    try:
        db = open_database()
        url = webserver or webserver_url()
        if not in_process and webserver_answers(url):
            click.echo(f"launching on the Dagster webserver at {url}", err=True)
            remote = run_check_on_webserver(url, trigger, retrain_settings=overrides)
            run_id, record = remote.run_id, decision_for_run(db, remote.run_id)
            where = f"{url.rstrip('/')}/runs/{run_id}"
        else:
            from ctr_assets.orchestration.run_check import local_instance, run_check_in_process

            with local_instance() as instance:
                run = run_check_in_process(
                    instance,
                    db,
                    trigger=trigger,
                    log_level="INFO" if verbose else "CRITICAL",
                    retrain_settings=overrides,
                )
            run_id, record, where = run.run_id, run.record, "in this process"
    except EXPECTED_FAILURES as error:
        # The caller still gets a record to parse; the one line follows on stderr.
        failed = {"status": "error", "reason": expected_failure(error), "trigger": trigger}
        click.echo(json.dumps(failed | {"checked_at": datetime.now(UTC).isoformat()}, indent=2))
        raise
    if record is None:
        reason = (
            f"run {run_id} ({where}) left no decision record in {db.redacted_url()}: it "
            "failed before deciding (see the run's logs, or --verbose), or the code location "
            "uses another database"
        )
        click.echo(json.dumps({"status": "error", "reason": reason, "run_id": run_id}, indent=2))
        click.echo(f"Error: {reason}", err=True)
        sys.exit(1)
    click.echo(json.dumps(record, indent=2))
    if record["status"] == "error":
        click.echo(f"Error: the check failed: {' '.join(record['reason'].split())}", err=True)
        sys.exit(1)


@click.command()
@click.option("--days", type=DAYS, default=30, show_default=True, help="Days to replay.")
@click.option(
    "--end",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Date the last replayed day ends (UTC midnight, as for simulate); default today.",
)
@click.option(
    "--gate",
    "gates",
    type=click.Choice(["noise_aware", "naive"]),
    multiple=True,
    help="Gate to replay (repeat for several); default both.",
)
@click.option(
    "--schema",
    default=None,
    help="Replay the tables of this schema (ctr_demo: the world `ctr-assets demo` lives in).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def backtest(
    days: int, end: datetime | None, gates: tuple[str, ...], schema: str | None, as_json: bool
) -> None:
    """Replays the retrain gate day by day over the stored predictions (trains nothing) and
    says, for each gate, on which days it would have retrained and why."""
    from ctr_assets.ml.decision import GATES
    from ctr_assets.ml.gate import format_bounds
    from ctr_assets.orchestration.resources import RetrainSettings
    from ctr_assets.retraining.backtest import backtest as replay
    from ctr_assets.retraining.backtest import summarise

    gates = gates or GATES
    database = open_database()
    if schema is not None:
        database = _existing_schema(database, schema)
    settings = RetrainSettings()
    last = (end.replace(tzinfo=UTC) if end else datetime.now(UTC)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    result = replay(
        database,
        last,
        days,
        settings.policy(),
        gates,
        settings.lookback_days,
        settings.maturity(),
    )
    summaries = summarise(result, gates)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "days": [day.as_json_dict() for day in result],
                    "gates": {s.gate: s.__dict__ for s in summaries},
                },
                indent=2,
            )
        )
        return
    header = "day         model                              n  observed  true MAE          "
    click.echo(header + "  ".join(f"{gate:<17}" for gate in gates))
    for day in result:
        bounds = format_bounds(day.mae_lower_bound, day.mae_upper_bound)
        observed = f"{day.mae:.4f}" if day.mae is not None else "n/a"
        click.echo(
            f"{day.day:%Y-%m-%d}  {(day.model_version or '-')[:32]:<32} {day.n_samples:>5}  "
            f"{observed:>8}  {bounds:<16}  "
            + "  ".join(f"{day.verdicts[gate]:<17}" for gate in gates)
        )
    for summary in summaries:
        fired = summary.retrain_days
        click.echo(
            f"{summary.gate}: would have retrained on {len(fired)} of {len(result)} days"
            + (f", first on {summary.first_retrain}" if fired else "")
        )
        if fired:
            first = next(d for d in result if d.verdicts[summary.gate] == "retrain")
            click.echo(f"  why, on {summary.first_retrain}: {first.reasons[summary.gate]}")


def _existing_schema(database, schema: str):
    """The database scoped to an existing schema (refused when it does not exist)."""
    with database.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        exists = cur.fetchone() is not None
    if not exists:
        raise click.BadParameter(f"schema {schema!r} does not exist", param_hint="'--schema'")
    try:
        return database.in_schema(schema)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--schema'") from error
