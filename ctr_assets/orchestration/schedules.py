"""The daily check."""

import dagster as dg

from ctr_assets.orchestration.assets import TRIGGER_TAG
from ctr_assets.orchestration.automation_settings import AutomationSettings
from ctr_assets.orchestration.jobs import retrain_check_job


def build_daily_schedule(settings: AutomationSettings) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="daily_retrain_check",
        cron_schedule=settings.schedule_cron,
        execution_timezone=settings.schedule_timezone,
        job=retrain_check_job,
        tags={TRIGGER_TAG: "schedule"},
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="The accuracy check and the retrain decision, every day.",
    )
