"""The code location: `ctr_assets.definitions:defs`.

Built when Dagster loads the location (not at import), so the schedule, freshness and
alert settings come from the environment of the process that serves it.
"""

import dagster as dg

from ctr_assets.orchestration.alerts import SlackAlerts
from ctr_assets.orchestration.automation_settings import AutomationSettings
from ctr_assets.orchestration.build import build_definitions
from ctr_assets.orchestration.tuning import tuning_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        build_definitions(AutomationSettings.from_environment(), SlackAlerts.from_environment()),
        tuning_definitions(),
    )
