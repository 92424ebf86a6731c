"""Secrets: a database password and a Slack webhook never reach a log, the Dagster storage,
a decision record or an error message.

A PostgreSQL role with a password owns the application database, and the URL carries it
(the local server trusts, but the URL is what an operator would set); the Slack webhook
points at a local HTTP server, so the alerts really post. A failing and a succeeding check
run in this process (`run_check_in_process`) and through `ctr-assets check-retrain
--in-process`; the alert sensors then post about each run. Afterwards everything is
searched for both secrets: the captured stdout, stderr and log records, every table of
Dagster's storage (runs, tags, the event log, the compressed snapshots), every file under
DAGSTER_HOME and CTR_HOME, the application tables, and what was posted to Slack.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import pytest
from psycopg2 import sql

from ctr_assets.db.connection import Database
from ctr_assets.db.schema import migrate
from ctr_assets.orchestration.alerts import SlackAlerts, alert_on_check, alert_on_failure
from ctr_assets.orchestration.resources import CtrDatabase
from ctr_assets.orchestration.run_check import run_check_in_process
from ctr_assets.simulation.populate import populate
from ctr_assets_tests.conftest import _admin, _with_database
from ctr_assets_tests.world_specs import small_world

BIN = Path(sys.executable).parent
DB_PASSWORD = f"pw-{uuid.uuid4().hex}"
SLACK_TOKEN = f"hook{uuid.uuid4().hex}"
WEBHOOK_PATH = f"/services/T0000/B0000/{SLACK_TOKEN}"
SECRETS = (DB_PASSWORD, SLACK_TOKEN)
APPLICATION_TABLES = ("retrain_decisions", "model_versions", "champion_history")
BAD_XGBOOST_PARAMETER = {"extra_params": {"no_such_parameter": 1}}


def _leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


@dataclass
class Slack:
    """A stand-in for Slack's incoming webhook that records every post."""

    port: int = 0
    posts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"


@pytest.fixture(scope="module")
def slack() -> Iterator[Slack]:
    fake = Slack()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            fake.posts.append({"path": self.path, "json": json.loads(body)})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: an access log would print the secret path itself."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def role(pg_admin_url: str) -> Iterator[str]:
    """A login role with a password: its URLs carry the secret."""
    name = f"ctr_secret_{uuid.uuid4().hex[:8]}"
    admin = _admin(pg_admin_url)
    admin.cursor().execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(DB_PASSWORD)
        )
    )
    yield name
    admin.cursor().execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
    admin.close()


@pytest.fixture
def secret_db(pg_admin_url: str, role: str) -> Iterator[Database]:
    """A demo world in a database the role owns, reached with the password in the URL."""
    name = f"ctr_secret_{uuid.uuid4().hex[:10]}"
    admin = _admin(pg_admin_url)
    admin.cursor().execute(
        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role))
    )
    server = _with_database(pg_admin_url, name)
    head, rest = server.split("://", 1)
    db = Database(f"{head}://{role}:{DB_PASSWORD}@{rest.split('@', 1)[-1]}")
    assert DB_PASSWORD in db.url
    migrate(db)
    populate(db, small_world())
    yield db
    admin.cursor().execute(
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )
    admin.close()


@pytest.fixture
def dagster_home(tmp_path: Path, dagster_storage_url: str) -> Path:
    """A Dagster home whose storage (runs, event log, snapshots) is on PostgreSQL."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {dagster_storage_url}\n"
        "telemetry:\n  enabled: false\n"
    )
    return home


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, slack: Slack, dagster_home: Path) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(variable, raising=False)  # slack_sdk would honour them


# --- where secrets could end up ----------------------------------------------------------


def _as_text(value: Any) -> str:
    if isinstance(value, memoryview | bytes):
        raw = bytes(value)
        with contextlib.suppress(zlib.error):
            raw = zlib.decompress(raw)  # Dagster stores snapshots compressed
        return raw.decode("utf-8", errors="replace")
    return json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)


def _tables_as_text(url: str, tables: tuple[str, ...] | None = None) -> dict[str, str]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        if tables is None:
            cur.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
            tables = tuple(row[0] for row in cur.fetchall())
        dumped = {}
        for table in tables:
            cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
            dumped[table] = "\n".join(
                " | ".join(_as_text(value) for value in row) for row in cur.fetchall()
            )
    return dumped


def _files_as_text(*folders: Path) -> dict[str, str]:
    return {
        str(path): path.read_bytes().decode("utf-8", errors="replace")
        for folder in folders
        if folder.is_dir()
        for path in folder.rglob("*")
        if path.is_file()
    }


def assert_no_secret_anywhere(places: dict[str, str]) -> None:
    leaked = {place: _leaks(text) for place, text in places.items() if _leaks(text)}
    assert leaked == {}, f"secrets found in: {sorted(leaked)}"


def _post_alerts(instance: dg.DagsterInstance, db: Database) -> list[str]:
    """What the alert sensors say for every finished run (they post through the webhook)."""
    said = []
    for run in instance.get_runs():
        failed = run.status == dg.DagsterRunStatus.FAILURE
        sensor = alert_on_failure if failed else alert_on_check
        kind = dg.DagsterEventType.RUN_FAILURE if failed else dg.DagsterEventType.RUN_SUCCESS
        event = instance.all_logs(run.run_id, of_type=kind)[-1].dagster_event
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=event,
            resources={
                "database": CtrDatabase(url=db.url),
                "slack_alerts": SlackAlerts.from_environment(),
            },
        )
        outcome = sensor(context)
        said.append(outcome.skip_message if isinstance(outcome, dg.SkipReason) else str(outcome))
    return said


def _storage_url(dagster_home: Path) -> str:
    config = (dagster_home / "dagster.yaml").read_text()
    return (
        config.split("postgres_url: ")[1]
        .split("\n")[0]
        .replace("postgresql+psycopg2", "postgresql")
    )


# --- the checks ------------------------------------------------------------------------------


@pytest.mark.usefixtures("environment")
def test_checks_in_this_process_leak_no_secret(
    secret_db: Database,
    dagster_home: Path,
    slack: Slack,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    models = tmp_path / "models"
    slack.posts.clear()
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        failed = run_check_in_process(
            instance,
            secret_db,
            model_dir=str(models),
            training_config=BAD_XGBOOST_PARAMETER,
            log_level="DEBUG",
        )
        succeeded = run_check_in_process(
            instance, secret_db, model_dir=str(models), log_level="DEBUG"
        )
        said = _post_alerts(instance, secret_db)

    # The runs did what this test claims: one failed with its record, one retrained; and
    # the alerts really went out, through the webhook that carries the token.
    assert not failed.success
    assert failed.record is not None
    assert failed.record["status"] == "error"
    assert "no_such_parameter" in failed.record["reason"]
    assert succeeded.success
    assert succeeded.record["status"] == "retrained"
    assert sorted(said) == sorted(
        [
            f"run {failed.run_id}: alert posted (error)",
            f"run {succeeded.run_id}: alert posted (retrained)",
        ]
    )
    assert [post["path"] for post in slack.posts] == [WEBHOOK_PATH, WEBHOOK_PATH]

    output = capfd.readouterr()
    places = {
        "stdout": output.out,
        "stderr": output.err,
        "log records": "\n".join(
            f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records
        ),
        "slack posts": json.dumps([post["json"] for post in slack.posts]),
        "alert sensor results": "\n".join(said),
        **_tables_as_text(_storage_url(dagster_home)),
        **_tables_as_text(secret_db.url, APPLICATION_TABLES),
        **_files_as_text(dagster_home, models),
    }
    assert "no_such_parameter" in places["retrain_decisions"]  # the search reaches the rows
    assert failed.run_id in places["event_logs"]
    assert_no_secret_anywhere(places)


def _ctr_assets(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ctr-assets"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.usefixtures("environment")
def test_the_check_retrain_command_leaks_no_secret(
    secret_db: Database, dagster_home: Path, slack: Slack, tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("CTR_HOME cannot be made under a file\n")
    home = tmp_path / "ctr-home"
    env = {
        "DATABASE_URL": secret_db.url,
        "DAGSTER_WEBSERVER_URL": f"http://127.0.0.1:{_closed_port()}",
    }
    unreachable = secret_db.url.rsplit("@", 1)[0] + f"@127.0.0.1:{_closed_port()}/ctr"
    slack.posts.clear()

    failing = _ctr_assets(
        {**env, "CTR_HOME": str(not_a_directory / "home")}, "check-retrain", "--in-process"
    )
    succeeding = _ctr_assets({**env, "CTR_HOME": str(home)}, "check-retrain", "--in-process")
    database_down = _ctr_assets(
        {**env, "DATABASE_URL": unreachable, "CTR_HOME": str(home)},
        "--verbose",
        "check-retrain",
        "--in-process",
    )
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        said = _post_alerts(instance, secret_db)

    assert failing.returncode == 1, failing.stderr[-2000:]
    assert json.loads(failing.stdout)["status"] == "error"
    assert "Not a directory" in failing.stdout
    assert succeeding.returncode == 0, succeeding.stderr[-2000:]
    assert json.loads(succeeding.stdout)["status"] == "retrained"
    assert database_down.returncode == 1
    assert json.loads(database_down.stdout)["status"] == "error"
    assert "Traceback" in database_down.stderr  # --verbose: the whole trace, still no secret
    assert len(said) == 2
    assert len(slack.posts) == 2

    places = {
        **{
            f"{name} {stream}": getattr(done, stream)
            for name, done in (
                ("failing", failing),
                ("succeeding", succeeding),
                ("database down", database_down),
            )
            for stream in ("stdout", "stderr")
        },
        "slack posts": json.dumps([post["json"] for post in slack.posts]),
        "alert sensor results": "\n".join(said),
        **_tables_as_text(_storage_url(dagster_home)),
        **_tables_as_text(secret_db.url, APPLICATION_TABLES),
        **_files_as_text(dagster_home, home),
    }
    assert_no_secret_anywhere(places)
