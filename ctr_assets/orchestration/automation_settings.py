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
        `CTR_RETRAIN_COOLDOWN_HOURS`, `CTR_PURCHASE_SENSOR_INTERVAL_SECONDS`,
        `CTR_ACCURACY_SENSOR_INTERVAL_SECONDS`; unset ones keep their defaults."""
        env = os.environ
        defaults = cls()

        def hours(name: str, default: timedelta) -> timedelta:
            value = env.get(name)
            return timedelta(hours=float(value)) if value else default

        def seconds(name: str, default: int) -> int:
            value = env.get(name)
            return int(value) if value else default

        return cls(
            schedule_cron=env.get("CTR_SCHEDULE_CRON") or defaults.schedule_cron,
            schedule_timezone=env.get("CTR_SCHEDULE_TIMEZONE") or defaults.schedule_timezone,
            accuracy_freshness=hours("CTR_ACCURACY_FRESHNESS_HOURS", defaults.accuracy_freshness),
            retrain_cooldown=hours("CTR_RETRAIN_COOLDOWN_HOURS", defaults.retrain_cooldown),
            purchase_sensor_interval_seconds=seconds(
                "CTR_PURCHASE_SENSOR_INTERVAL_SECONDS", defaults.purchase_sensor_interval_seconds
            ),
            accuracy_sensor_interval_seconds=seconds(
                "CTR_ACCURACY_SENSOR_INTERVAL_SECONDS", defaults.accuracy_sensor_interval_seconds
            ),
        )
