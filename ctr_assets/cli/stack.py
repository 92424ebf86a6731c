"""The local stack and the schema: `ctr-assets dev`, `ctr-assets db init`."""

from __future__ import annotations

import click

from ctr_assets.cli.arguments import resolvable_host
from ctr_assets.db.connection import Database
from ctr_assets.db.schema import migrate
from ctr_assets.simulation.populate import populate
from ctr_assets.simulation.world import WorldSpec


@click.group()
def db() -> None:
    """The application database (DATABASE_URL, or the embedded server under CTR_HOME)."""


@db.command("init")
def db_init() -> None:
    """Creates or upgrades the schema; safe to run any number of times."""
    database = Database.from_environment()
    applied = migrate(database)
    click.echo(f"database: {database.redacted_url()}")
    click.echo(f"schema up to date; applied now: {', '.join(applied) or 'nothing'}")


@click.command()
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

    import requests

    from ctr_assets.deploy.local_stack import (
        LocalStack,
        dagster_storage_url,
        database_is_empty,
        default_paths,
        prepare,
        write_instance_files,
    )
    from ctr_assets.orchestration.remote import LaunchError

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
        try:
            first = stack.train_first_champion()
        except (LaunchError, requests.RequestException) as error:
            click.echo(
                f"first champion:    the check could not be launched ({error}); "
                "run `ctr-assets check-retrain`",
                err=True,
            )
        else:
            if first is not None:
                click.echo(f"first champion:    training now, {stack.url}/runs/{first}")
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
