"""The champion's accuracy with the gate's evidence: what every retrain decision reads."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any

from ctr_assets.data.accuracy import AccuracyReport, Maturity, load_outcomes, measure_accuracy
from ctr_assets.db.connection import Database
from ctr_assets.ml.decision import RetrainPolicy
from ctr_assets.ml.gate import GateEvidence, assess


def measure_champion(
    db: Database,
    model_version: str | None,
    as_of: datetime,
    policy: RetrainPolicy,
    lookback_days: int = 7,
    maturity: Maturity | None = None,
    evidence: GateEvidence | None = None,
) -> AccuracyReport:
    """The figures over the window (SQL) and the gate's evidence on the same rows: the
    window's confidence bounds, and the CUSUM over the model's outcomes of the last
    `policy.cusum_days` (only this version's: a promotion starts it afresh).

    `evidence` is the gate's evidence when it was already taken on these rows, as of the
    same moment with the same settings (`gate_settings`): it is used instead of being
    computed again (the gate's bounds are most of a measurement's time)."""
    maturity = maturity or Maturity()
    report = measure_accuracy(db, model_version, as_of, lookback_days, maturity)
    if model_version is None:
        return report
    if evidence is not None:
        return replace(report, evidence=evidence)
    window_start = as_of - timedelta(days=lookback_days)
    recent_start = min(window_start, as_of - timedelta(days=policy.cusum_days))
    recent = load_outcomes(db, model_version, as_of, recent_start, maturity)
    evidence = assess(
        recent.predicted_since(window_start.timestamp()),
        recent.predicted_since((as_of - timedelta(days=policy.cusum_days)).timestamp()),
        policy.mae_threshold,
        policy.confidence,
        phi=policy.dispersion,
        cusum_k=policy.cusum_k,
        cusum_h=policy.cusum_h,
    )
    return replace(report, evidence=evidence)


def gate_settings(policy: RetrainPolicy, lookback_days: int, maturity: Maturity) -> dict[str, Any]:
    """Everything the gate's evidence depends on besides the rows (JSON-ready): evidence
    taken with equal settings, on the same model as of the same moment, is the same."""
    return {"policy": asdict(policy), "lookback_days": lookback_days, "maturity": asdict(maturity)}
