"""The decision record of a check that died before it could write one.

A run worker killed with -9 (the OOM killer, a node going away) never reaches the code that
stores its record, and a check that failed before deciding (the database down under the
accuracy query) never had one. Every check that started still gets its record: `error`,
the cause in words, and what the run left behind, read from the registry: the champion
when the run started and when it failed (a run can die after committing a promotion), and
a challenger saved during the run.
"""

from __future__ import annotations

from datetime import datetime

from ctr_assets.models.registry import ModelRegistry
from ctr_assets.retraining.record import DecisionRecord, Trigger, store_decision_once


def record_failed_check(
    registry: ModelRegistry,
    run_id: str,
    trigger: Trigger,
    cause: str,
    started_at: datetime,
    failed_at: datetime,
    threshold: float,
) -> DecisionRecord | None:
    """Stores an `error` record for the run unless it left one; returns it, or None."""
    before = registry.champion_at(started_at)
    after = registry.champion_at(failed_at)
    challengers = [v.version for v in registry.versions_created(started_at, failed_at)]
    challenger = challengers[-1] if challengers else None
    if before == after:
        left = f"the champion is unchanged ({before or 'none yet'})"
    else:
        left = (
            f"the champion was {before or 'none'} when the run started and "
            f"{after or 'none'} when it failed"
        )
    if challenger and challenger != after:
        left += f"; challenger {challenger} was saved but never promoted"
    record = DecisionRecord(
        status="error",
        reason=f"the check run {run_id} failed before it recorded a decision: {cause}; {left}",
        trigger=trigger,
        checked_at=failed_at,
        as_of=failed_at,
        mae=None,
        n_samples=None,
        threshold=threshold,
        champion_before=before,
        champion_after=after,
        challenger=challenger,
        run_id=run_id,
    )
    return record if store_decision_once(registry.db, record) is not None else None
