"""The `ctr-assets` command line."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import click

from ctr_assets.db.schema import migrate, open_database
from ctr_assets.simulation.populate import populate
from ctr_assets.simulation.world import WorldSpec


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
def main(verbose: bool) -> None:
    """Keeps a click-through-rate model honest: measure, retrain when needed, prove it."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


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
@click.option("--days", default=30, show_default=True, help="Simulated days, ending today.")
@click.option("--videos", default=3000, show_default=True, help="Videos launched in all.")
@click.option("--seed", default=42, show_default=True, help="Same seed, same world.")
@click.option(
    "--drift-day",
    default=15,
    show_default=True,
    help="Day from which one platform's CTR shifts; negative for no drift.",
)
@click.option("--drift-platform", default="tiktok", show_default=True)
@click.option("--drift-factor", default=2.0, show_default=True, help="CTR multiplier.")
@click.option(
    "--bad-row-fraction", default=0.01, show_default=True, help="Share of planted bad rows."
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
    spec = WorldSpec(
        seed=seed,
        days=days,
        videos=videos,
        drift_day=drift_day if drift_day >= 0 else None,
        drift_platform=drift_platform,
        drift_factor=drift_factor,
        bad_row_fraction=bad_row_fraction,
        **({"end": end.replace(tzinfo=UTC)} if end else {}),
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


if __name__ == "__main__":
    main()
