"""How the loop runs itself: read from the environment when the code location loads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class AutomationSettings:
    schedule_cron: str = "0 2 * * *"
    schedule_timezone: str = "UTC"
    accuracy_freshness: timedelta = timedelta(hours=24)
    retrain_cooldown: timedelta = timedelta(hours=6)
    purchase_sensor_interval_seconds: int = 60
    accuracy_sensor_interval_seconds: int = 300

    @classmethod
    def from_environment(cls) -> AutomationSettings:
        """`CTR_SCHEDULE_CRON`, `CTR_SCHEDULE_TIMEZONE`, `CTR_ACCURACY_FRESHNESS_HOURS`,
        `CTR_RETRAIN_COOLDOWN_HOURS`, `CTR_PURCHASE_SENSOR_INTERVAL_SECONDS`; unset ones
        keep their defaults."""
        env = os.environ
        defaults = cls()
        return cls(
            schedule_cron=env.get("CTR_SCHEDULE_CRON", defaults.schedule_cron),
            schedule_timezone=env.get("CTR_SCHEDULE_TIMEZONE", defaults.schedule_timezone),
            accuracy_freshness=_hours(env.get("CTR_ACCURACY_FRESHNESS_HOURS"))
            or defaults.accuracy_freshness,
            retrain_cooldown=_hours(env.get("CTR_RETRAIN_COOLDOWN_HOURS"))
            or defaults.retrain_cooldown,
            purchase_sensor_interval_seconds=int(
                env.get(
                    "CTR_PURCHASE_SENSOR_INTERVAL_SECONDS",
                    defaults.purchase_sensor_interval_seconds,
                )
            ),
        )


def _hours(value: str | None) -> timedelta | None:
    return timedelta(hours=float(value)) if value else None
