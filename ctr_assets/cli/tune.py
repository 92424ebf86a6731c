"""`ctr-assets tune`: a hyperparameter search whose winner becomes the training config of
the next checks only on evidence; `--history` and `--roll-back-to` show and undo that."""

from __future__ import annotations

import json

import click

from ctr_assets.db.schema import open_database


def _config_id(value: str | None) -> int | str | None:
    if value is None or value == "defaults":
        return value
    if not value.isdigit():
        raise click.BadParameter("give a config id from --history, or 'defaults'")
    return int(value)


@click.command()
@click.option(
    "--trials",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="Trials to run in this session (added to the study's earlier ones).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.IntRange(1, 7 * 86_400),
    default=None,
    help="Stop starting trials after this many seconds.",
)
@click.option(
    "--study",
    default="ctr_training",
    show_default=True,
    help="Optuna study name; an existing study resumes.",
)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--history", is_flag=True, help="List adopted configs and rollbacks; tune nothing.")
@click.option(
    "--roll-back-to",
    "roll_back_to",
    default=None,
    callback=lambda _c, _p, v: _config_id(v),
    help="Put an earlier config (its id, or 'defaults') back in force; tune nothing.",
)
def tune(
    trials: int,
    timeout_s: int | None,
    study: str,
    seed: int,
    history: bool,
    roll_back_to: int | str | None,
) -> None:
    """Searches XGBoost settings with Optuna (the study in the same PostgreSQL), each trial
    scored on the promotion hold-out; the best replaces the training config of the next
    checks only when it beats the config in force by the promotion rule. Prints JSON."""
    from ctr_assets.models.training_configs import (
        current_training_config,
        roll_back_training_config,
        training_config_history,
    )
    from ctr_assets.retraining.tune import tune_training_config

    db = open_database()
    if history:
        current = current_training_config(db)
        changes = [
            {
                "config": change.config_id,
                "previous": change.previous_config_id,
                "at": change.changed_at.isoformat(),
                "action": change.action,
                "reason": change.reason,
            }
            for change in training_config_history(db)
        ]
        click.echo(
            json.dumps(
                {
                    "in_force": current.id if current else None,
                    "params": current.params.as_dict() if current else None,
                    "changes": changes,
                },
                indent=2,
            )
        )
        return
    if roll_back_to is not None:
        target = None if roll_back_to == "defaults" else roll_back_to
        try:
            previous = roll_back_training_config(db, target, "manual rollback")
        except KeyError as error:
            raise click.ClickException(str(error).strip("'\"")) from error
        click.echo(f"training config: {target or 'defaults'} (was {previous or 'defaults'})")
        return
    try:
        report = tune_training_config(
            db, trials=trials, timeout_s=timeout_s, study_name=study, seed=seed
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    click.echo(json.dumps(report.as_dict(), indent=2))
