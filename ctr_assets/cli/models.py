"""Model versions: `ctr-assets models list|champion|rollback`."""

from __future__ import annotations

import json
import sys

import click

from ctr_assets import settings
from ctr_assets.cli.arguments import words
from ctr_assets.db.schema import open_database


@click.group()
def models() -> None:
    """Model versions: list them, show the champion, roll back."""


def _registry():
    from ctr_assets.models.mlflow_mirror import MlflowMirror
    from ctr_assets.models.registry import ModelRegistry

    return ModelRegistry(
        open_database(), settings.ctr_home() / "models", MlflowMirror.from_environment()
    )


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
    mirror = registry.sync_mirror()
    if mirror is not None and mirror["status"] != "mirrored":
        click.echo(
            f"warning: the MLflow mirror at {mirror['tracking_uri']} did not follow "
            f"({mirror['error']}); the next check retries",
            err=True,
        )
    elif mirror is not None:
        click.echo(
            f"MLflow: alias champion of {mirror['registered_model']} -> version "
            f"{mirror['champion_mlflow_version']}"
        )
