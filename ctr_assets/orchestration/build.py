"""Everything the code location holds, assembled from its settings."""

import dagster as dg

from ctr_assets.orchestration.alerts import SlackAlerts, alert_on_check, alert_on_failure
from ctr_assets.orchestration.assets import prediction_accuracy, real_training_data, retrain_check
from ctr_assets.orchestration.automation_settings import AutomationSettings
from ctr_assets.orchestration.failed_checks import record_failed_check_run
from ctr_assets.orchestration.jobs import ACCURACY, retrain_check_job
from ctr_assets.orchestration.report_asset import ReportStore, accuracy_report
from ctr_assets.orchestration.resources import (
    CtrDatabase,
    ModelStore,
    RetrainSettings,
    TrainingCluster,
)
from ctr_assets.orchestration.schedules import build_daily_schedule
from ctr_assets.orchestration.sensors import build_accuracy_sensor, build_purchase_sensor


def build_definitions(
    automation: AutomationSettings | None = None, slack: SlackAlerts | None = None
) -> dg.Definitions:
    automation = automation or AutomationSettings()
    freshness = dg.FreshnessPolicy.time_window(fail_window=automation.accuracy_freshness)
    assets = dg.map_asset_specs(
        lambda spec: (
            spec.replace_attributes(freshness_policy=freshness) if spec.key == ACCURACY else spec
        ),
        [prediction_accuracy, real_training_data, retrain_check, accuracy_report],
    )
    return dg.Definitions(
        assets=assets,
        jobs=[retrain_check_job],
        schedules=[build_daily_schedule(automation)],
        sensors=[
            build_accuracy_sensor(automation),
            build_purchase_sensor(automation),
            alert_on_check,
            alert_on_failure,
            record_failed_check_run,
        ],
        resources={
            "database": CtrDatabase(),
            "models": ModelStore(),
            "retrain_settings": RetrainSettings(),
            "training_cluster": TrainingCluster(),
            "reports": ReportStore(),
            "slack_alerts": slack or SlackAlerts(),
        },
    )
