"""Slack alerts: the message text, posting to a webhook, and the run status sensors.

A local HTTP server stands in for Slack's incoming webhook; the sensors run against a real
PostgreSQL and real Dagster runs.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.error import URLError

import dagster as dg
import pytest

from ctr_assets.db.connection import Database
from ctr_assets.orchestration.alerts import SlackAlerts, alert_on_check, alert_on_failure
from ctr_assets.orchestration.resources import CtrDatabase
from ctr_assets.reporting.alerts import alert_text
from ctr_assets.retraining.record import DecisionRecord, store_decision

T0 = datetime(2026, 10, 8, 6, 0, tzinfo=UTC)
RUN_URL = "http://dagster.example:3000/runs/abc123"
SECRET = "secret-token"
WEBHOOK_PATH = f"/services/T000/B000/{SECRET}"
SLACK_VARIABLES = ("SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "SLACK_CHANNEL", "DAGSTER_WEBSERVER_URL")


def _record(status: str, **overrides: Any) -> DecisionRecord:
    values: dict[str, Any] = {
        "status": status,
        "reason": f"because-{status}: live MAE 0.0123 above 0.0100",
        "trigger": "accuracy_sensor",
        "checked_at": T0,
        "as_of": T0,
        "mae": 0.0123456,
        "n_samples": 812,
        "threshold": 0.01,
        "champion_before": "v3",
        "champion_after": "v4" if status == "retrained" else "v3",
        "mae_before": 0.00987654,
        "mae_after": 0.0081234,
        "r2_before": 0.61,
        "r2_after": 0.72,
    }
    return DecisionRecord(**(values | overrides))


# --- the message text -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headline_word", "champions"),
    [
        ("no_retrain_needed", None, None),
        ("insufficient_data", None, None),
        ("retrained", "retrained", "Champion: v3 -> v4"),
        ("rejected", "rejected", "Champion: v3 -> v3"),
        ("error", "failed", "Champion: v3 -> v3"),
    ],
)
def test_alert_text_per_status(
    status: str, headline_word: str | None, champions: str | None
) -> None:
    text = alert_text(_record(status).as_json_dict(), RUN_URL)
    if headline_word is None:
        assert text is None
        return
    assert text is not None
    lines = text.splitlines()
    assert headline_word in lines[0]
    assert f"Reason: because-{status}: live MAE 0.0123 above 0.0100" in lines
    assert "Live MAE: 0.0123 over 812 predictions (threshold 0.0100)" in lines
    assert "Hold-out MAE before/after: 0.0099 / 0.0081" in text
    assert "R² before/after: 0.6100 / 0.7200" in text
    assert champions in lines
    assert lines[-1] == f"Run: {RUN_URL}"


def test_alert_text_shows_missing_figures_as_na_not_zero() -> None:
    record = _record(
        "error", mae=None, mae_before=None, mae_after=None, r2_before=None, r2_after=None
    )
    text = alert_text(record.as_json_dict(), RUN_URL)
    assert text is not None
    assert "Live MAE: n/a" in text
    assert "Hold-out MAE before/after: n/a / n/a" in text
    assert "0.0000" not in text


def test_alert_text_for_a_failure_before_any_decision() -> None:
    text = alert_text(None, RUN_URL, "Steps failed: ['retrain_check'].")
    assert text is not None
    assert "failed" in text.splitlines()[0]
    assert "Steps failed: ['retrain_check']." in text
    assert text.splitlines()[-1] == f"Run: {RUN_URL}"


def test_alert_text_without_record_or_failure_is_none() -> None:
    assert alert_text(None, RUN_URL) is None


# --- a stand-in for Slack's incoming webhook ----------------------------------------------


@dataclass
class FakeSlack:
    """Records every POST; answers with `status` and `body`."""

    port: int = 0
    status: int = 200
    body: str = "ok"
    posts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def texts(self) -> list[str]:
        return [post["json"]["text"] for post in self.posts]


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk honours proxy variables; the stand-in server is local."""
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def slack(no_proxy: None) -> Iterator[FakeSlack]:
    fake = FakeSlack()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            fake.posts.append(
                {"path": self.path, "headers": dict(self.headers), "json": json.loads(raw)}
            )
            answer = fake.body.encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the stand-in's access log would print the secret path itself."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_post_delivers_one_json_message(slack: FakeSlack) -> None:
    SlackAlerts(webhook_url=slack.webhook_url).post("hello")
    assert len(slack.posts) == 1
    post = slack.posts[0]
    assert post["path"] == WEBHOOK_PATH
    assert post["headers"]["Content-Type"].startswith("application/json")
    assert post["json"]["text"] == "hello"


@pytest.mark.parametrize(("status", "body"), [(500, "internal_error"), (404, "no_service")])
def test_refused_post_raises_without_the_url(slack: FakeSlack, status: int, body: str) -> None:
    slack.status, slack.body = status, body
    with pytest.raises(RuntimeError) as refused:
        SlackAlerts(webhook_url=slack.webhook_url).post("hello")
    message = str(refused.value)
    assert f"HTTP {status}" in message
    assert body in message
    assert SECRET not in message
    assert slack.webhook_url not in message
    assert "/services/" not in message
    assert len(slack.posts) == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_webhook_raises_without_the_url(no_proxy: None) -> None:
    url = f"http://127.0.0.1:{_closed_port()}{WEBHOOK_PATH}"
    with pytest.raises(URLError, match="refused") as unreachable:
        SlackAlerts(webhook_url=url).post("hello")
    assert SECRET not in str(unreachable.value)
    assert SECRET not in repr(unreachable.value)


def test_webhook_url_never_reaches_the_logs(
    slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("slack_sdk", "slack_sdk.webhook", "slack_sdk.webhook.client", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)
    alerts = SlackAlerts(webhook_url=slack.webhook_url)

    alerts.post("delivered")
    slack.status, slack.body = 500, "internal_error"
    with pytest.raises(RuntimeError, match="HTTP 500"):
        alerts.post("refused")
    unreachable = SlackAlerts(webhook_url=f"http://127.0.0.1:{_closed_port()}{WEBHOOK_PATH}")
    with pytest.raises(URLError, match="refused"):
        unreachable.post("unreachable")

    assert slack.texts() == ["delivered", "refused"]
    leaked = [record.getMessage() for record in caplog.records if SECRET in record.getMessage()]
    assert leaked == []
    output = capfd.readouterr()
    assert SECRET not in output.out
    assert SECRET not in output.err


# --- the run status sensors, on real runs and a real database --------------------------------


@dg.asset
def retrain_check_stand_in() -> int:
    return 1


@dg.asset
def failing_check_stand_in() -> int:
    raise RuntimeError("the retrain check blew up")


@dataclass(frozen=True)
class FinishedRun:
    instance: dg.DagsterInstance
    run: dg.DagsterRun
    event: dg.DagsterEvent

    @property
    def run_id(self) -> str:
        return self.run.run_id


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture(scope="module")
def succeeded(instance: dg.DagsterInstance) -> FinishedRun:
    result = dg.materialize([retrain_check_stand_in], instance=instance)
    assert result.success
    return FinishedRun(instance, result.dagster_run, result.get_run_success_event())


@pytest.fixture(scope="module")
def failed(instance: dg.DagsterInstance) -> FinishedRun:
    result = dg.materialize([failing_check_stand_in], instance=instance, raise_on_error=False)
    assert not result.success
    return FinishedRun(instance, result.dagster_run, result.get_run_failure_event())


def _context(
    sensor: dg.SensorDefinition, finished: FinishedRun, db: Database, alerts: SlackAlerts
) -> dg.RunStatusSensorContext:
    return dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=finished.instance,
        dagster_run=finished.run,
        dagster_event=finished.event,
        resources={"database": CtrDatabase(url=db.url), "slack_alerts": alerts},
    )


def test_retrained_check_posts_an_alert_with_a_run_link(
    db: Database, succeeded: FinishedRun, slack: FakeSlack
) -> None:
    store_decision(db, _record("retrained", run_id=succeeded.run_id))
    alerts = SlackAlerts(
        webhook_url=slack.webhook_url, webserver_url="http://dagster.example:3000/"
    )

    outcome = alert_on_check(_context(alert_on_check, succeeded, db, alerts))

    assert len(slack.posts) == 1
    assert slack.posts[0]["path"] == WEBHOOK_PATH
    text = slack.texts()[0]
    assert "retrained" in text.splitlines()[0]
    assert "because-retrained: live MAE 0.0123 above 0.0100" in text
    assert "Champion: v3 -> v4" in text
    assert text.splitlines()[-1] == f"Run: http://dagster.example:3000/runs/{succeeded.run_id}"
    assert isinstance(outcome, dg.SkipReason)
    assert "alert posted (retrained)" in (outcome.skip_message or "")


def test_the_alert_is_for_this_run_not_another(
    db: Database, succeeded: FinishedRun, slack: FakeSlack
) -> None:
    store_decision(db, _record("rejected", run_id="some-other-run"))
    store_decision(db, _record("retrained", run_id=succeeded.run_id))
    store_decision(db, _record("rejected", run_id="yet-another-run"))
    alerts = SlackAlerts(webhook_url=slack.webhook_url)

    alert_on_check(_context(alert_on_check, succeeded, db, alerts))

    assert len(slack.texts()) == 1
    assert "because-retrained" in slack.texts()[0]


@pytest.mark.parametrize("status", ["no_retrain_needed", "insufficient_data"])
def test_quiet_outcomes_post_nothing(
    db: Database, succeeded: FinishedRun, slack: FakeSlack, status: str
) -> None:
    store_decision(db, _record(status, run_id=succeeded.run_id))
    alerts = SlackAlerts(webhook_url=slack.webhook_url)

    outcome = alert_on_check(_context(alert_on_check, succeeded, db, alerts))

    assert slack.posts == []
    assert isinstance(outcome, dg.SkipReason)
    assert f"{status}, nothing to alert" in (outcome.skip_message or "")


def test_a_run_without_a_decision_posts_nothing_on_success(
    db: Database, succeeded: FinishedRun, slack: FakeSlack
) -> None:
    alerts = SlackAlerts(webhook_url=slack.webhook_url)

    outcome = alert_on_check(_context(alert_on_check, succeeded, db, alerts))

    assert slack.posts == []
    assert isinstance(outcome, dg.SkipReason)
    assert "no decision" in (outcome.skip_message or "")


@pytest.mark.parametrize("sensor", [alert_on_check, alert_on_failure], ids=lambda s: s.name)
def test_unconfigured_alerts_skip_and_say_so(
    db: Database,
    succeeded: FinishedRun,
    failed: FinishedRun,
    slack: FakeSlack,
    sensor: dg.SensorDefinition,
) -> None:
    finished = succeeded if sensor is alert_on_check else failed
    store_decision(db, _record("retrained", run_id=finished.run_id))

    outcome = sensor(_context(sensor, finished, db, SlackAlerts()))

    assert slack.posts == []
    assert isinstance(outcome, dg.SkipReason)
    assert "Slack alerts are off" in (outcome.skip_message or "")
    assert "SLACK_WEBHOOK_URL" in (outcome.skip_message or "")


def test_failed_check_with_an_error_record_posts_failed(
    db: Database, failed: FinishedRun, slack: FakeSlack
) -> None:
    store_decision(
        db, _record("error", reason="training raised: out of memory", run_id=failed.run_id)
    )
    alerts = SlackAlerts(webhook_url=slack.webhook_url)

    outcome = alert_on_failure(_context(alert_on_failure, failed, db, alerts))

    assert len(slack.posts) == 1
    text = slack.texts()[0]
    assert "failed" in text.splitlines()[0]
    assert "training raised: out of memory" in text
    assert text.splitlines()[-1].endswith(f"/runs/{failed.run_id}")
    assert isinstance(outcome, dg.SkipReason)
    assert "alert posted (error)" in (outcome.skip_message or "")


def test_failed_run_before_any_decision_posts_the_failure(
    db: Database, failed: FinishedRun, slack: FakeSlack
) -> None:
    alerts = SlackAlerts(webhook_url=slack.webhook_url)

    alert_on_failure(_context(alert_on_failure, failed, db, alerts))

    assert len(slack.posts) == 1
    text = slack.texts()[0]
    assert "failed before deciding" in text
    assert "failing_check_stand_in" in text
    assert text.splitlines()[-1].endswith(f"/runs/{failed.run_id}")


def test_sensor_resolves_the_environment_configuration(
    db: Database, succeeded: FinishedRun, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in SLACK_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    monkeypatch.setenv("DAGSTER_WEBSERVER_URL", "https://dagster.example.org")
    store_decision(db, _record("rejected", run_id=succeeded.run_id))

    alert_on_check(_context(alert_on_check, succeeded, db, SlackAlerts.from_environment()))

    assert len(slack.posts) == 1
    assert slack.posts[0]["path"] == WEBHOOK_PATH
    text = slack.texts()[0]
    assert "rejected" in text.splitlines()[0]
    assert text.splitlines()[-1] == f"Run: https://dagster.example.org/runs/{succeeded.run_id}"


# --- configuration from the environment -----------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "enabled"),
    [
        ({}, False),
        ({"SLACK_WEBHOOK_URL": "https://hooks.slack.invalid/services/T/B/x"}, True),
        ({"SLACK_BOT_TOKEN": "xoxb-test"}, False),
        ({"SLACK_CHANNEL": "#ctr"}, False),
        ({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_CHANNEL": "#ctr"}, True),
        ({"DAGSTER_WEBSERVER_URL": "https://dagster.example.org"}, False),
    ],
    ids=["nothing", "webhook", "token-only", "channel-only", "token-and-channel", "ui-only"],
)
def test_from_environment_enables_only_a_complete_destination(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], enabled: bool
) -> None:
    for variable in SLACK_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    assert SlackAlerts.from_environment().enabled is enabled


@pytest.mark.parametrize("status", ["no_retrain_needed", "insufficient_data", "retrained"])
def test_a_failed_run_alerts_whatever_its_record_says(status: str) -> None:
    record = {
        "status": status,
        "reason": "because",
        "trigger": "schedule",
        "mae": 0.01,
        "n_samples": 100,
        "threshold": 0.02,
        "champion_before": "v1",
        "champion_after": "v1",
    }
    text = alert_text(record, "http://ui/runs/r1", failure="blocking check failed")
    assert text is not None
    assert text.startswith(":x:")
    assert "blocking check failed" in text
    assert f"Decision: {status}" in text
