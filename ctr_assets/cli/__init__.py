"""The `ctr-assets` command line: one module per family of commands."""

from __future__ import annotations

import logging

import click

from ctr_assets.cli.checks import backtest, check_retrain
from ctr_assets.cli.errors import CommandLine, WithoutTracebacks
from ctr_assets.cli.models import models
from ctr_assets.cli.report import report
from ctr_assets.cli.stack import db, dev
from ctr_assets.cli.tune import tune
from ctr_assets.cli.world import demo, simulate


@click.group(cls=CommandLine)
@click.option("-v", "--verbose", is_flag=True, help="Log progress (and stack traces) to stderr.")
def main(verbose: bool) -> None:
    """Keeps a click-through-rate model honest: measure, retrain when needed, prove it."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(WithoutTracebacks())
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])


for command in (db, simulate, demo, dev, check_retrain, backtest, report, models, tune):
    main.add_command(command)

__all__ = ["main"]
