"""The `ctr-assets` command line."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

import click

from ctr_assets import settings
from ctr_assets.cli_arguments import (
    DAYS,
    DRIFT_DAY,
    DRIFT_FACTOR,
    SEED,
    VIDEOS,
    FiniteFloatRange,
    http_url,
    resolvable_host,
    words,
    world_from_options,
)
from ctr_assets.cli_errors import (
    EXPECTED_FAILURES,
    CommandLine,
    WithoutTracebacks,
    expected_failure,
)
from ctr_assets.data.features import PLATFORMS
from ctr_assets.db.schema import migrate, open_database
from ctr_assets.simulation.populate import populate
from ctr_assets.simulation.world import WorldSpec


@click.group(cls=CommandLine)
@click.option("-v", "--verbose", is_flag=True, help="Log progress (and stack traces) to stderr.")
def main(verbose: bool) -> None:
    """Keeps a click-through-rate model honest: measure, retrain when needed, prove it."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(WithoutTracebacks())
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])


@main.group()
def db() -> None:
    """The application database (DATABASE_URL, or the embedded server under CTR_HOME)."""


@db.command("init")
def db_init() -> None:
    """Creates or upgrades the schema; safe to run any number of times."""
    database = open_database()
    applied = migrate(database)
    click.echo(f"database: {database.redacted_url()}")
    click.echo(f"schema up to date; applied now: {', '.join(applied) or 'nothing'}")


@main.command()
@click.option(
    "--days", type=DAYS, default=30, show_default=True, help="Simulated days, ending today."
)
@click.option(
    "--videos", type=VIDEOS, default=3000, show_default=True, help="Videos launched in all."
)
@click.option("--seed", type=SEED, default=42, show_default=True, help="Same seed, same world.")
@click.option(
    "--drift-day",
    type=DRIFT_DAY,
    default=15,
    show_default=True,
    help="Day from which one platform's CTR shifts; negative for no drift.",
)
@click.option("--drift-platform", type=click.Choice(PLATFORMS), default="tiktok", show_default=True)
@click.option(
    "--drift-factor",
    type=DRIFT_FACTOR,
    default=2.0,
    show_default=True,
    help="CTR multiplier from the drift day on (above 0, at most 10).",
)
@click.option(
    "--bad-row-fraction",
    type=FiniteFloatRange(0, 1),
    default=0.01,
    show_default=True,
    help="Share of planted bad rows.",
)
@click.option(
    "--end",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Date the last simulated day ends (UTC); default today.",
)
def simulate(
    days: int,
    videos: int,
    seed: int,
    drift_day: int,
    drift_platform: str,
    drift_factor: float,
    bad_row_fraction: float,
    end: datetime | None,
) -> None:
    """Fills the database with the demo world: videos, predictions, outcomes, purchases.

    Deterministic for a seed; running it again adds nothing twice.
    """
    spec = world_from_options(
        days,
        videos,
        seed,
        drift_day,
        drift_factor,
        drift_platform=drift_platform,
        bad_row_fraction=bad_row_fraction,
        end=end.replace(tzinfo=UTC) if end else None,
    )
    database = open_database()
    summary = populate(database, spec)
    click.echo(f"database: {database.redacted_url()}")
    click.echo(
        json.dumps(
            {
                "days": spec.days,
                "from": spec.start.isoformat(),
                "to": spec.end.isoformat(),
                "videos_inserted_or_refreshed": summary.videos,
                "predictions_added": summary.predictions_added,
                "predictions_resolved": summary.predictions_resolved,
                "purchases_added": summary.purchases_added,
                "planted_bad_rows": summary.planted_bad_rows,
            },
            indent=2,
        )
    )


def _dagster_instance():
    """The instance under DAGSTER_HOME when one is set, else a throwaway one."""
    import os

    import dagster as dg

    return (
        dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME")
        else dg.DagsterInstance.ephemeral()
    )


@main.command()
@click.option("--days", type=DAYS, default=30, show_default=True)
@click.option(
    "--videos", type=VIDEOS, default=6000, show_default=True, help="Videos launched in all."
)
@click.option("--seed", type=SEED, default=42, show_default=True)
@click.option(
    "--drift-day", type=DRIFT_DAY, default=15, show_default=True, help="Negative: no drift."
)
@click.option("--drift-factor", type=DRIFT_FACTOR, default=2.0, show_default=True)
@click.option(
    "--first-check-day",
    type=click.IntRange(0, 3649),
    default=7,
    show_default=True,
    help="Days of legacy history first.",
)
@click.option(
    "--schema",
    default="ctr_demo",
    show_default=True,
    help="PostgreSQL schema the demo runs in: created and marked by the demo, emptied by "
    "each run; a schema the demo did not create (public included) is refused.",
)
def demo(
    days: int,
    videos: int,
    seed: int,
    drift_day: int,
    drift_factor: float,
    first_check_day: int,
    schema: str,
) -> None:
    """The closed loop over simulated days, headless: drift, breach, retrain, recovery.

    Prints one line per day; exits non-zero if a check fails or the loop ends with the
    champion still over the threshold.
    """
    from ctr_assets.db.demo_schema import (
        SchemaRefusedError,
        check_demo_schema_name,
        reset_demo_schema,
    )
    from ctr_assets.orchestration.demo import run_demo
    from ctr_assets.orchestration.resources import RetrainSettings

    try:
        check_demo_schema_name(schema)
    except SchemaRefusedError as refused:
        raise click.BadParameter(str(refused), param_hint="'--schema'") from refused

    if first_check_day >= days:
        raise click.BadParameter(
            f"{days} days leave nothing to check: the first check runs on day "
            f"{first_check_day} (--first-check-day)",
            param_hint="'--days'",
        )
    spec = world_from_options(days, videos, seed, drift_day, drift_factor)
    try:
        db = reset_demo_schema(open_database(), schema)
    except SchemaRefusedError as refused:
        raise click.BadParameter(str(refused), param_hint="'--schema'") from refused
    model_dir = settings.ctr_home() / "demo-models" / schema
    if model_dir.exists():
        for stale in model_dir.glob("*.json"):
            stale.unlink()
    click.echo(f"demo world in schema {schema} of {db.redacted_url().split('?')[0]}")
    with _dagster_instance() as instance:
        results = run_demo(
            db,
            spec,
            model_dir,
            instance=instance,
            first_check_day=first_check_day,
            on_day=lambda day: click.echo(day.line()),
        )
    checks = [r for r in results if r.status != "history"]
    judged = [r for r in checks if r.mae is not None]
    failed = [r for r in checks if not r.run_success or r.status == "error"]
    retrains = [r for r in checks if r.status == "retrained"]
    threshold = RetrainSettings().mae_threshold
    click.echo(
        f"checks: {len(checks)}, models promoted: {len(retrains)} "
        "(the first included), "
        f"failed: {len(failed)}, final MAE: " + (f"{judged[-1].mae:.4f}" if judged else "n/a")
    )
    if failed:
        click.echo(f"FAILED: check on day {failed[0].day}: {failed[0].reason}", err=True)
        sys.exit(1)
    if judged and judged[-1].mae > threshold:
        click.echo(
            f"FAILED: the loop ended with the champion's MAE {judged[-1].mae:.4f} over "
            f"the threshold {threshold}",
            err=True,
        )
        sys.exit(1)


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    callback=resolvable_host,
    help="Webserver address.",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=3000, show_default=True, help="Webserver port."
)
@click.option("--demo-data/--no-demo-data", default=True, help="Fill an empty database.")
def dev(host: str, port: int, demo_data: bool) -> None:
    """The local stack: PostgreSQL, demo data, Dagster webserver and daemon (sensors and
    schedule running). Ctrl-C stops every process it started."""
    import signal
    import socket
    import time

    from ctr_assets.deploy.local_stack import (
        LocalStack,
        dagster_storage_url,
        database_is_empty,
        default_paths,
        prepare,
        write_instance_files,
    )

    with socket.socket() as probe:
        if probe.connect_ex((host, port)) == 0:
            raise click.ClickException(f"{host}:{port} is taken; choose another --port")
    paths = default_paths()
    db = prepare(paths)
    click.echo(f"application database: {db.redacted_url()}")
    if demo_data and database_is_empty(db):
        summary = populate(db, WorldSpec())
        click.echo(
            f"empty database: loaded the demo world ({summary.videos} videos, "
            f"{summary.predictions_added} predictions, {summary.purchases_added} purchases)"
        )
    storage = dagster_storage_url(db)
    write_instance_files(paths)
    stack = LocalStack(paths, db, host, port, [])

    def stop(signum, frame):  # Ctrl-C, or a service manager's stop
        raise KeyboardInterrupt

    # Set explicitly: a shell that starts us in the background may have ignored SIGINT.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        stack.start(storage)
        stack.wait_until_ready()
        click.echo(f"Dagster UI:        {stack.url}")
        click.echo(f"asset graph:       {stack.url}/asset-groups/ctr_retraining")
        click.echo(f"sensors, schedule: {stack.url}/automation (running)")
        click.echo(f"Dagster home:      {paths.dagster_home} (storage on PostgreSQL)")
        click.echo(f"logs:              {paths.logs}")
        click.echo("Ctrl-C stops everything this command started.")
        while all(process.poll() is None for process in stack.processes):
            time.sleep(1)
        dead = [p.args[0] for p in stack.processes if p.poll() is not None]
        raise click.ClickException(f"{', '.join(dead)} stopped; see {paths.logs}")
    except KeyboardInterrupt:
        click.echo("stopping ...")
    finally:
        stack.stop()
        click.echo("stopped.")


@main.command("check-retrain")
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
@click.pass_context
def check_retrain(
    ctx: click.Context, trigger: str, webserver: str | None, in_process: bool
) -> None:
    """Runs one retrain check now and prints its decision record as JSON.

    Exits 0 for every status but `error`, which exits 1 (with the reason on stderr).
    """
    from ctr_assets.orchestration.remote import (
        run_check_on_webserver,
        webserver_answers,
        webserver_url,
    )
    from ctr_assets.orchestration.run_check import run_check_in_process
    from ctr_assets.retraining.record import decision_for_run

    verbose = bool(ctx.find_root().params.get("verbose"))
    try:
        db = open_database()
        url = webserver or webserver_url()
        if not in_process and webserver_answers(url):
            click.echo(f"launching on the Dagster webserver at {url}", err=True)
            remote = run_check_on_webserver(url, trigger)
            run_id, record = remote.run_id, decision_for_run(db, remote.run_id)
            where = f"{url.rstrip('/')}/runs/{run_id}"
        else:
            with _dagster_instance() as instance:
                run = run_check_in_process(
                    instance, db, trigger=trigger, log_level="INFO" if verbose else "CRITICAL"
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


@main.group()
def models() -> None:
    """Model versions: list them, show the champion, roll back."""


def _registry():
    from ctr_assets.models.registry import ModelRegistry

    return ModelRegistry(open_database(), settings.ctr_home() / "models")


@models.command("list")
def models_list() -> None:
    """Every trained version, oldest first; the champion is marked with *."""
    registry = _registry()
    champion = registry.champion()
    for model in registry.versions():
        mark = "*" if champion and model.version == champion.version else " "
        mae = f"{model.holdout_mae:.4f}" if model.holdout_mae is not None else "n/a"
        click.echo(
            f"{mark} {model.version}  {model.created_at:%Y-%m-%d %H:%M}  hold-out MAE {mae}  "
            f"rows {model.training_rows}"
        )


@models.command("champion")
def models_champion() -> None:
    """The champion and how it came to be, as JSON."""
    registry = _registry()
    champion = registry.champion()
    if champion is None:
        click.echo("no champion yet; run `ctr-assets check-retrain` to train one", err=True)
        sys.exit(1)
    change = registry.history()[-1]
    click.echo(
        json.dumps(
            {
                "version": champion.version,
                "since": change.changed_at.isoformat(),
                "action": change.action,
                "reason": change.reason,
                "previous_version": change.previous_version,
                "holdout_mae": champion.holdout_mae,
                "holdout_r2": champion.holdout_r2,
                "file": champion.file_path,
                "sha256": champion.sha256,
            },
            indent=2,
        )
    )


@models.command("rollback")
@click.argument("version")
@click.option("--reason", default="manual rollback", show_default=True, callback=words)
def models_rollback(version: str, reason: str) -> None:
    """Makes an earlier VERSION the champion again (its file is verified first)."""
    from ctr_assets.ml.model_files import ModelFileError

    registry = _registry()
    try:
        registry.load(registry.get(version))  # refuse a missing or altered file
        previous = registry.roll_back(version, reason)
    except (KeyError, ValueError, ModelFileError) as error:
        raise click.ClickException(str(error).strip("'\"")) from error
    click.echo(f"champion: {version} (was {previous})")


if __name__ == "__main__":
    main()
