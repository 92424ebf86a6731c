"""Alert messages for a decision: what changed, the figures, and where to look."""

from __future__ import annotations

from typing import Any

ALERTING_STATUSES = ("retrained", "rejected", "error")
_HEADLINES = {
    "retrained": ":white_check_mark: CTR model retrained and promoted",
    "rejected": ":warning: CTR challenger rejected; the champion stays",
    "error": ":x: CTR retrain check failed; the champion is unchanged",
}


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def alert_text(
    record: dict[str, Any] | None, run_url: str, failure: str | None = None
) -> str | None:
    """The message for a finished check, or None when the outcome needs no alert.

    A failed run always alerts, whatever its decision record says: the failure may have
    come after the record was stored (a blocking check, say).
    """
    if record is None:
        if failure is None:
            return None
        return f"{_HEADLINES['error']}\nThe check failed before deciding: {failure}\nRun: {run_url}"
    status = record["status"]
    if failure is None and status not in ALERTING_STATUSES:
        return None
    samples = record.get("n_samples")
    lines = [
        _HEADLINES["error"] if failure is not None else _HEADLINES[status],
        *([f"The run failed: {failure}"] if failure is not None else []),
        f"Decision: {status}",
        f"Reason: {record['reason']}",
        f"Trigger: {record['trigger']}",
        f"Live MAE: {_figure(record.get('mae'))} over "
        f"{'n/a' if samples is None else samples} predictions "
        f"(threshold {_figure(record.get('threshold'))})",
        f"Hold-out MAE before/after: {_figure(record.get('mae_before'))} / "
        f"{_figure(record.get('mae_after'))}; "
        f"R² before/after: {_figure(record.get('r2_before'))} / {_figure(record.get('r2_after'))}",
        f"Champion: {record.get('champion_before') or 'none'} -> "
        f"{record.get('champion_after') or 'none'}",
        f"Run: {run_url}",
    ]
    return "\n".join(lines)
