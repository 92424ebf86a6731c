"""Slack alerts when a check retrains, rejects a challenger, or fails.

Off unless a webhook URL (or a bot token and a channel) is configured. Posting goes
through slack_sdk; its debug log would print the webhook URL, so it gets a logger of its
own that stays quiet.
"""

import logging
import os

import dagster as dg
from pydantic import Field
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from ctr_assets.orchestration.resources import CtrDatabase
from ctr_assets.reporting.alerts import alert_text
from ctr_assets.retraining.record import decision_for_run

_quiet = logging.getLogger("ctr_assets.alerts.slack_client")
_quiet.setLevel(logging.WARNING)
_quiet.propagate = False


class SlackAlerts(dg.ConfigurableResource):
    """Where alerts go. Secrets come from the environment (EnvVar), never from code."""

    # Secrets: kept out of the resource's repr, so they reach no log or error message.
    webhook_url: str | None = Field(default=None, repr=False, description="Incoming webhook URL.")
    bot_token: str | None = Field(
        default=None, repr=False, description="Bot token (with `channel`)."
    )
    channel: str | None = Field(default=None, description="Channel for the bot token.")
    webserver_url: str = Field(
        default="http://127.0.0.1:3000", description="Base URL of the Dagster UI, for run links."
    )

    @classmethod
    def from_environment(cls) -> "SlackAlerts":
        """EnvVar references for what is set: `SLACK_WEBHOOK_URL`, or `SLACK_BOT_TOKEN` and
        `SLACK_CHANNEL`; `DAGSTER_WEBSERVER_URL` for links."""
        configured = {
            field: dg.EnvVar(variable)
            for field, variable in (
                ("webhook_url", "SLACK_WEBHOOK_URL"),
                ("bot_token", "SLACK_BOT_TOKEN"),
                ("channel", "SLACK_CHANNEL"),
                ("webserver_url", "DAGSTER_WEBSERVER_URL"),
            )
            if os.environ.get(variable)
        }
        return cls(**configured)

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url or (self.bot_token and self.channel))

    def run_url(self, run_id: str) -> str:
        return f"{self.webserver_url.rstrip('/')}/runs/{run_id}"

    def post(self, text: str) -> None:
        """Posts `text`; a refusal raises with Slack's answer (never the URL)."""
        if self.webhook_url:
            response = WebhookClient(self.webhook_url, timeout=10, logger=_quiet).send(text=text)
            if response.status_code != 200:
                raise RuntimeError(
                    f"the Slack webhook refused the alert: HTTP {response.status_code} "
                    f"{response.body[:200]}"
                )
        elif self.bot_token and self.channel:
            WebClient(token=self.bot_token, logger=_quiet).chat_postMessage(
                channel=self.channel, text=text
            )


_OFF = "Slack alerts are off: set SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN and SLACK_CHANNEL"


def _alert(
    context: dg.RunStatusSensorContext,
    database: CtrDatabase,
    slack: SlackAlerts,
    failure: str | None,
):
    if not slack.enabled:
        return dg.SkipReason(_OFF)
    run_id = context.dagster_run.run_id
    record = decision_for_run(database.open(), run_id)
    text = alert_text(record, slack.run_url(run_id), failure)
    if text is None:
        status = record["status"] if record else "no decision"
        return dg.SkipReason(f"run {run_id}: {status}, nothing to alert")
    slack.post(text)
    return dg.SkipReason(f"run {run_id}: alert posted ({record['status'] if record else 'failed'})")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="ctr_alert_on_check",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts to Slack when a check retrained or rejected a challenger.",
)
def alert_on_check(
    context: dg.RunStatusSensorContext, database: CtrDatabase, slack_alerts: SlackAlerts
):
    return _alert(context, database, slack_alerts, None)


@dg.run_failure_sensor(
    name="ctr_alert_on_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts to Slack when a check run fails.",
)
def alert_on_failure(
    context: dg.RunFailureSensorContext, database: CtrDatabase, slack_alerts: SlackAlerts
):
    message = context.failure_event.message if context.failure_event else "run failed"
    return _alert(context, database, slack_alerts, message)
