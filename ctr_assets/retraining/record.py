"""The decision record: one per retrain check, whatever its outcome.

`ctr-assets check-retrain` prints it as JSON and `retrain_decisions` stores it; the fixed
keys are those of the design contract, the rest add context.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

from ctr_assets.db.connection import Database

Status = Literal["no_retrain_needed", "retrained", "insufficient_data", "rejected", "error"]
Trigger = Literal["schedule", "purchase_signals", "accuracy_sensor", "manual"]
STATUSES: tuple[str, ...] = (
    "no_retrain_needed",
    "retrained",
    "insufficient_data",
    "rejected",
    "error",
)
TRIGGERS: tuple[str, ...] = ("schedule", "purchase_signals", "accuracy_sensor", "manual")


@dataclass(frozen=True)
class DecisionRecord:
    status: Status
    reason: str
    trigger: Trigger
    checked_at: datetime
    as_of: datetime  # the end of the accuracy window (differs from checked_at in replays)
    mae: float | None
    n_samples: int | None
    threshold: float
    champion_before: str | None
    champion_after: str | None
    mae_before: float | None = None
    mae_after: float | None = None
    r2_before: float | None = None
    r2_after: float | None = None
    training_seconds: float | None = None
    challenger: str | None = None
    training_rows: int | None = None
    holdout_rows: int | None = None
    bad_rows: dict[str, int] = field(default_factory=dict)
    run_id: str | None = None
    # The evidence behind the gate (see ml/gate.py): both views, the bounds, the CUSUM.
    gate: str | None = None
    confidence: float | None = None
    noise_mae: float | None = None  # what a perfect model would show on the same rows
    boundary_mae: float | None = None  # what a model exactly at the threshold would show
    mae_lower_bound: float | None = None  # confidence interval of the true MAE
    mae_upper_bound: float | None = None
    dispersion: float | None = None
    immature_rows: int = 0
    no_impressions_rows: int = 0
    invalid_rows: int = 0
    views: dict[str, str] = field(default_factory=dict)  # gate name -> its verdict
    cusum: dict[str, Any] | None = None
    # The evidence behind the promotion (see ml/promotion.py).
    improvement: dict[str, Any] | None = None  # paired hold-out advantage with its bounds
    slices: list[dict[str, Any]] = field(default_factory=list)  # per platform before/after
    roas: dict[str, Any] | None = None
    # MLflow, when MLFLOW_TRACKING_URI is set (see models/mlflow_mirror.py): what the
    # mirror did this check, or why it failed (`status` "failed", `error`).
    mlflow_mirror: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; one of {STATUSES}")
        if self.trigger not in TRIGGERS:
            raise ValueError(f"unknown trigger {self.trigger!r}; one of {TRIGGERS}")

    @property
    def r2_delta(self) -> float | None:
        if self.r2_before is None or self.r2_after is None:
            return None
        return self.r2_after - self.r2_before

    @property
    def mae_improvement(self) -> float | None:
        """How much lower the new model's hold-out MAE is than the old one's."""
        if self.mae_before is None or self.mae_after is None:
            return None
        return self.mae_before - self.mae_after

    def as_json_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["checked_at"] = self.checked_at.isoformat()
        values["as_of"] = self.as_of.isoformat()
        values["r2_delta"] = self.r2_delta
        values["mae_improvement"] = self.mae_improvement
        return values


def ordered(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record (JSONB does not keep key order) in the order of `DecisionRecord`."""
    order = [f.name for f in fields(DecisionRecord)] + ["r2_delta", "mae_improvement"]
    known = {key: record[key] for key in order if key in record}
    return known | {key: value for key, value in record.items() if key not in known}


def store_decision(db: Database, record: DecisionRecord) -> int:
    """Appends the record to `retrain_decisions`; returns its id."""
    with db.connect() as conn, conn.cursor() as cur:
        return _insert(cur, record)


def store_decision_once(db: Database, record: DecisionRecord) -> int | None:
    """Appends the record unless its run already left one; returns its id, or None.

    Checked and inserted under a lock on the run id, so two writers (a sensor tick retried,
    say) never both record the same run.
    """
    if record.run_id is None:
        raise ValueError("store_decision_once needs the record's run_id")
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (record.run_id,))
        cur.execute("SELECT 1 FROM retrain_decisions WHERE run_id = %s", (record.run_id,))
        if cur.fetchone() is not None:
            return None
        return _insert(cur, record)


def _insert(cur, record: DecisionRecord) -> int:
    values = record.as_json_dict()
    columns = (
        "checked_at, trigger, status, reason, mae, n_samples, threshold, champion_before, "
        "champion_after, mae_before, mae_after, r2_before, r2_after, training_seconds, run_id"
    )
    cur.execute(
        f"INSERT INTO retrain_decisions ({columns}, record) VALUES "
        f"({', '.join(['%s'] * 15)}, %s) RETURNING id",
        (
            record.checked_at,
            record.trigger,
            record.status,
            record.reason,
            record.mae,
            record.n_samples,
            record.threshold,
            record.champion_before,
            record.champion_after,
            record.mae_before,
            record.mae_after,
            record.r2_before,
            record.r2_after,
            record.training_seconds,
            record.run_id,
            json.dumps(values),
        ),
    )
    return int(cur.fetchone()[0])


def decision_for_run(db: Database, run_id: str) -> dict[str, Any] | None:
    """The record a Dagster run stored, if it got that far."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT record FROM retrain_decisions WHERE run_id = %s ORDER BY id DESC LIMIT 1",
            (run_id,),
        )
        row = cur.fetchone()
    return ordered(row[0]) if row else None


def recent_decisions(db: Database, limit: int = 30) -> list[dict[str, Any]]:
    """The newest records, oldest first (for trends)."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT record FROM (SELECT id, record FROM retrain_decisions "
            "ORDER BY id DESC LIMIT %s) newest ORDER BY id",
            (limit,),
        )
        return [ordered(row[0]) for row in cur.fetchall()]
