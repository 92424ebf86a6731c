"""The demo world: `ctr-assets simulate` fills the database, `ctr-assets demo` lives the
closed loop through it day by day."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from ctr_assets import settings
from ctr_assets.cli.arguments import (
    DAYS,
    DRIFT_DAY,
    DRIFT_FACTOR,
    GATE,
    OUTCOME_IMPRESSIONS,
    SEED,
    VIDEOS,
    FiniteFloatRange,
    world_from_options,
)
from ctr_assets.data.features import PLATFORMS
from ctr_assets.db.schema import open_database
from ctr_assets.simulation.populate import populate


@click.command()
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
@OUTCOME_IMPRESSIONS
def simulate(
    days: int,
    videos: int,
    seed: int,
    drift_day: int,
    drift_platform: str,
    drift_factor: float,
    bad_row_fraction: float,
    end: datetime | None,
    outcome_impressions: tuple[int, int] | None,
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
        outcome_impressions=outcome_impressions,
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


@click.command()
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
@OUTCOME_IMPRESSIONS
@GATE
def demo(
    days: int,
    videos: int,
    seed: int,
    drift_day: int,
    drift_factor: float,
    first_check_day: int,
    schema: str,
    outcome_impressions: tuple[int, int] | None,
    gate: str,
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
    from ctr_assets.orchestration.run_check import local_instance

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
    spec = world_from_options(
        days, videos, seed, drift_day, drift_factor, outcome_impressions=outcome_impressions
    )
    try:
        db = reset_demo_schema(open_database(), schema)
    except SchemaRefusedError as refused:
        raise click.BadParameter(str(refused), param_hint="'--schema'") from refused
    model_dir = settings.ctr_home() / "demo-models" / schema
    if model_dir.exists():
        for stale in model_dir.glob("*.json"):
            stale.unlink()
    click.echo(f"demo world in schema {schema} of {db.redacted_url().split('?')[0]}")
    with local_instance() as instance:
        results = run_demo(
            db,
            spec,
            model_dir,
            instance=instance,
            first_check_day=first_check_day,
            on_day=lambda day: click.echo(day.line()),
            retrain_settings={"gate": gate},
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
    if judged and judged[-1].over_threshold(gate):
        last = judged[-1]
        click.echo(
            f"FAILED: the loop ended with the champion over the threshold {threshold} by the "
            f"{gate} gate (observed MAE {last.mae:.4f}): {last.reason}",
            err=True,
        )
        sys.exit(1)
