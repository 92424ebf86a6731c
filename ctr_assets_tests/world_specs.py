"""Small demo worlds for tests: fixed dates, so results never depend on the clock."""

from __future__ import annotations

from datetime import UTC, datetime

from ctr_assets.simulation.world import WorldSpec

END = datetime(2026, 11, 1, tzinfo=UTC)


def small_world(**overrides: object) -> WorldSpec:
    settings: dict[str, object] = {
        "seed": 7,
        "days": 20,
        "videos": 1000,
        "drift_day": 10,
        "bad_row_fraction": 0.02,
        "end": END,
    }
    settings.update(overrides)
    return WorldSpec(**settings)  # type: ignore[arg-type]
