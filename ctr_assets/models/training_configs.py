"""The training config of the next checks: adopted from a hyperparameter search only on
evidence, kept with its history, and rolled back like a champion.

The config in force is that of the newest row of `training_config_history` (NULL: the
built-in `TrainingParams` defaults). Adoption and rollback each insert one row under a
lock, after checking that the config in force is still the one the caller compared
against, so two searches finishing at once cannot both replace the same config.

`training_params_for_check` is the one place a check (in-process or on a cluster) reads
the params it trains with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from ctr_assets.db.connection import Database
from ctr_assets.ml.training import TrainingParams

_CONFIG_LOCK = 7_316_004_213


class TrainingConfigChangedError(RuntimeError):
    """Another search or a rollback changed the config while this one was comparing."""


@dataclass(frozen=True)
class TrainingConfigRecord:
    """One adopted config and the evidence it was adopted on."""

    id: int
    created_at: datetime
    params: TrainingParams
    study_name: str | None
    trial_number: int | None
    holdout_mae: float | None
    baseline_mae: float | None
    holdout_rows: int | None
    evidence: dict[str, Any]


@dataclass(frozen=True)
class TrainingConfigChange:
    config_id: int | None  # None: the built-in defaults
    previous_config_id: int | None
    changed_at: datetime
    action: str
    reason: str


_COLUMNS = (
    "id, created_at, params, study_name, trial_number, holdout_mae, baseline_mae, "
    "holdout_rows, evidence"
)


def _config(row: tuple) -> TrainingConfigRecord:
    return TrainingConfigRecord(
        id=row[0],
        created_at=row[1],
        params=TrainingParams.from_dict(row[2]),
        study_name=row[3],
        trial_number=row[4],
        holdout_mae=row[5],
        baseline_mae=row[6],
        holdout_rows=row[7],
        evidence=row[8],
    )


def current_training_config(db: Database) -> TrainingConfigRecord | None:
    """The adopted config in force, or None when the built-in defaults are."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM training_configs WHERE id = ("
            "SELECT config_id FROM training_config_history ORDER BY id DESC LIMIT 1)"
        )
        row = cur.fetchone()
    return _config(row) if row else None


def current_training_params(db: Database) -> TrainingParams:
    """The params of the config in force (the built-in defaults when none was adopted)."""
    config = current_training_config(db)
    return config.params if config else TrainingParams()


def training_params_for_check(db: Database, run_config: TrainingParams) -> TrainingParams:
    """What the next check trains with: the config in force, except where the run's own
    config departs from the built-in defaults (an operator's explicit setting wins)."""
    defaults, stored = TrainingParams(), current_training_params(db)
    overrides = {
        f.name: getattr(run_config, f.name)
        for f in fields(TrainingParams)
        if getattr(run_config, f.name) != getattr(defaults, f.name)
    }
    return TrainingParams.from_dict({**stored.as_dict(), **overrides})


def get_training_config(db: Database, config_id: int) -> TrainingConfigRecord:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM training_configs WHERE id = %s", (config_id,))
        row = cur.fetchone()
    if row is None:
        raise KeyError(f"no training config {config_id}; `ctr-assets tune --history` lists them")
    return _config(row)


def training_config_history(db: Database) -> list[TrainingConfigChange]:
    """Every adoption and rollback, oldest first."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT config_id, previous_config_id, changed_at, action, reason "
            "FROM training_config_history ORDER BY id"
        )
        return [TrainingConfigChange(*row) for row in cur.fetchall()]


def _in_force_id(cur) -> int | None:
    cur.execute("SELECT config_id FROM training_config_history ORDER BY id DESC LIMIT 1")
    row = cur.fetchone()
    return row[0] if row else None


def adopt_training_config(
    db: Database,
    params: TrainingParams,
    *,
    replacing: int | None,
    reason: str,
    study_name: str | None = None,
    trial_number: int | None = None,
    holdout_mae: float | None = None,
    baseline_mae: float | None = None,
    holdout_rows: int | None = None,
    evidence: dict[str, Any] | None = None,
) -> TrainingConfigRecord:
    """Makes `params` the config of the next checks, if `replacing` is still in force."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_CONFIG_LOCK,))
        in_force = _in_force_id(cur)
        if in_force != replacing:
            raise TrainingConfigChangedError(
                f"the training config changed to {in_force or 'the defaults'} while it was "
                f"compared against {replacing or 'the defaults'}; run the search again"
            )
        cur.execute(
            "INSERT INTO training_configs (params, study_name, trial_number, holdout_mae, "
            "baseline_mae, holdout_rows, evidence) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            f"RETURNING {_COLUMNS}",
            (
                json.dumps(params.as_dict()),
                study_name,
                trial_number,
                holdout_mae,
                baseline_mae,
                holdout_rows,
                json.dumps(evidence or {}),
            ),
        )
        config = _config(cur.fetchone())
        cur.execute(
            "INSERT INTO training_config_history (config_id, previous_config_id, action, "
            "reason) VALUES (%s, %s, 'adopted', %s)",
            (config.id, in_force, reason),
        )
    return config


def roll_back_training_config(db: Database, config_id: int | None, reason: str) -> int | None:
    """Puts an earlier config (None: the built-in defaults) back in force; returns the id
    that was in force."""
    if config_id is not None:
        get_training_config(db, config_id)  # refuse an unknown id
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_CONFIG_LOCK,))
        in_force = _in_force_id(cur)
        cur.execute(
            "INSERT INTO training_config_history (config_id, previous_config_id, action, "
            "reason) VALUES (%s, %s, 'rolled_back', %s)",
            (config_id, in_force, reason),
        )
    return in_force
