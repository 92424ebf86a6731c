"""What the accuracy sensor should do, given what it sees: one pure function."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from ctr_assets.ml.decision import RetrainPolicy, decide_retrain
from ctr_assets.ml.gate import GateEvidence


@dataclass(frozen=True)
class AccuracyObservation:
    """The newest `prediction_accuracy` materialization."""

    storage_id: int
    materialized_at: datetime
    evidence: GateEvidence | None  # None: measured by an older version, or nothing to judge
    n_samples: int
    champion: str | None
    decided: bool  # a retrain_report came after it (its own run, or a later one)


@dataclass(frozen=True)
class SensorFacts:
    now: datetime
    accuracy: AccuracyObservation | None
    check_in_progress: bool  # a run that can retrain is queued or running
    last_retrain_at: datetime | None  # newest ctr_model materialization


@dataclass(frozen=True)
class SensorAction:
    kind: Literal["refresh", "retrain", "skip"]
    reason: str
    run_key: str | None = None


def accuracy_sensor_action(
    facts: SensorFacts, policy: RetrainPolicy, freshness: timedelta, cooldown: timedelta
) -> SensorAction:
    """Refresh stale accuracy; request a retrain for a fresh, undecided breach; else say
    why not."""
    accuracy = facts.accuracy
    if facts.check_in_progress:
        return SensorAction("skip", "a check that can retrain is already queued or running")
    if accuracy is None or facts.now - accuracy.materialized_at > freshness:
        age = (
            "has never been measured"
            if accuracy is None
            else f"was last measured {_hours(facts.now - accuracy.materialized_at)} ago"
        )
        bucket = int(facts.now.timestamp() // max(freshness.total_seconds(), 1))
        last = accuracy.storage_id if accuracy else 0
        return SensorAction(
            "refresh",
            f"accuracy {age}; freshness window {_hours(freshness)}",
            run_key=f"accuracy-refresh-{last}-{bucket}",
        )
    label = f"accuracy #{accuracy.storage_id} of {accuracy.materialized_at:%Y-%m-%d %H:%M} UTC"
    if accuracy.decided:
        return SensorAction("skip", f"{label} was already decided by a retrain check")
    if accuracy.champion is None:
        return SensorAction(
            "skip",
            "no champion yet: the daily check or `ctr-assets check-retrain` trains the first",
        )
    evidence = accuracy.evidence
    if evidence is not None and (
        evidence.threshold != policy.mae_threshold or evidence.confidence != policy.confidence
    ):
        return SensorAction(
            "skip",
            f"{label} was judged at threshold {evidence.threshold} and confidence "
            f"{evidence.confidence}, the settings now say {policy.mae_threshold} and "
            f"{policy.confidence}; it is refreshed when its freshness window ends",
        )
    decision = decide_retrain(evidence, policy, has_champion=True)
    if decision.action != "retrain":
        return SensorAction("skip", f"{label}: {decision.reason}")
    if facts.last_retrain_at is not None and facts.now - facts.last_retrain_at < cooldown:
        until = facts.last_retrain_at + cooldown
        return SensorAction(
            "skip",
            f"{label}: {decision.reason}; but the last retrain was at "
            f"{facts.last_retrain_at:%Y-%m-%d %H:%M} UTC; cooling down until "
            f"{until:%Y-%m-%d %H:%M} UTC",
        )
    return SensorAction(
        "retrain",
        f"{label}: {decision.reason}",
        run_key=f"retrain-for-accuracy-{accuracy.storage_id}",
    )


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:.1f} h"
