"""The daemon killed with -9 and restarted while purchase signals arrive: each is counted
once.

First at each of Dagster's own crash points of a sensor tick (`debug_crash_flags`: the
daemon's loop body kills its own process with SIGKILL there): a tick started but not
evaluated, evaluated with its run requests and cursor reserved, its run created, its run
submitted. Each time more signals arrive while it is dead, and the next pass (which
resumes a reserved tick) must count every signal exactly once. Then a real
`dagster-daemon` process, killed with -9 and started again.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from dagster._core.scheduler.instigation import TickStatus

from ctr_assets.db.connection import Database
from ctr_assets_tests.faults.daemon_ticks import (
    ROOT,
    code_server,
    daemon_workspace,
    purchase_sensor,
    tick_once,
    ticks,
)
from ctr_assets_tests.faults.purchase_ticks import insert_signal

BIN = Path(sys.executable).parent

INSTANCE_YAML = """
storage:
  postgres:
    postgres_url:
      env: DAGSTER_POSTGRES_URL
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
telemetry:
  enabled: false
"""


@pytest.fixture
def environment(
    db: Database, dagster_storage_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """DAGSTER_HOME on PostgreSQL storage, shared by this process and the ones it starts."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    values = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": dagster_storage_url,
        "DATABASE_URL": db.url,
        "CTR_HOME": str(tmp_path / "ctr_home"),
        "CTR_PURCHASE_SENSOR_INTERVAL_SECONDS": "1",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **values}


def _insert(db: Database, prefix: str, count: int) -> None:
    with contextlib.closing(psycopg2.connect(db.url)) as conn:
        for n in range(count):
            insert_signal(conn, f"{prefix}-{n}")
            if n % 3 == 2:
                conn.commit()  # several transactions
        conn.commit()


def _purchase_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"ctr_assets/trigger": "purchase_signals"}))
    return sorted(runs, key=lambda run: int(run.tags["ctr_assets/purchase_xids"].split("-")[0]))


def _assert_counted_once(runs: list[dg.DagsterRun], inserted: int) -> None:
    """The runs' batches follow each other, no key twice, and add up to `inserted`."""
    keys = [run.tags["dagster/run_key"] for run in runs]
    assert len(keys) == len(set(keys)), keys
    spans = [tuple(map(int, run.tags["ctr_assets/purchase_xids"].split("-"))) for run in runs]
    for (_, until), (since, _) in itertools.pairwise(spans):
        assert since >= until, spans  # in order (ticks that skip in between move it on)
    assert sum(int(run.tags["ctr_assets/purchases"]) for run in runs) == inserted


@pytest.mark.parametrize(
    "crash_points", [("TICK_HELD", "RUN_IDS_RESERVED", "RUN_CREATED", "RUN_LAUNCHED")]
)
def test_a_tick_killed_at_each_crash_point_counts_every_signal_once(
    db: Database, environment: dict[str, str], crash_points: tuple[str, ...]
) -> None:
    with (
        code_server(environment) as target,
        dg.DagsterInstance.get() as instance,
        daemon_workspace(instance, target) as workspace,
    ):
        sensor = purchase_sensor(workspace)
        assert "first tick" in tick_once(workspace, instance).skip_reason
        inserted = 0
        port = str(target.port)
        for point in crash_points:
            _insert(db, f"before-{point}", 5)
            killed = subprocess.run(
                [sys.executable, "-m", "ctr_assets_tests.faults.daemon_iteration", point, port],
                env=environment,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
            _insert(db, f"while-dead-{point}", 4)  # inserted meanwhile
            inserted += 9
            # The next passes resume or redo the killed tick, then count what came since.
            while True:
                done = tick_once(workspace, instance)
                assert done.status != TickStatus.FAILURE, done.error
                for run in instance.get_runs(
                    filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])
                ):
                    instance.report_run_canceled(run)  # the check "ran": the sensor goes on
                if sum(int(r.tags["ctr_assets/purchases"]) for r in _purchase_runs(instance)) >= (
                    inserted
                ):
                    break
        assert "no new purchase signals" in tick_once(workspace, instance).skip_reason
        _assert_counted_once(_purchase_runs(instance), inserted)
        assert all(t.status != TickStatus.FAILURE for t in ticks(instance, sensor))


def _start_daemon(environment: dict[str, str], home: Path, log: Path) -> subprocess.Popen:
    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: ctr_assets.definitions\n"
        "      attribute: defs\n      location_name: ctr_assets\n"
        f"      working_directory: {ROOT}\n"
    )
    return subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
        env=environment,
        cwd=home,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its code server and run workers in its own group
    )


@contextlib.contextmanager
def _daemon(environment: dict[str, str], home: Path, log: Path) -> Iterator[subprocess.Popen]:
    process = _start_daemon(environment, home, log)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its group: code server, run workers
        process.wait(timeout=30)


def _wait(condition, what: str, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what} within {timeout} s; daemon log:\n{log.read_text()[-4000:]}"
            )
        time.sleep(1)


def test_a_real_daemon_killed_and_restarted_counts_signals_inserted_meanwhile_once(
    db: Database, environment: dict[str, str], tmp_path: Path
) -> None:
    home = Path(environment["DAGSTER_HOME"])
    # The queue launches nothing (`max_concurrent_runs: 0`): the test plays the check by
    # cancelling each queued run, so only the sensor's own bookkeeping is under test.
    (home / "dagster.yaml").write_text(
        INSTANCE_YAML.replace(
            "  class: QueuedRunCoordinator\n",
            "  class: QueuedRunCoordinator\n  config:\n    max_concurrent_runs: 0\n",
        )
    )
    log = tmp_path / "daemon.log"
    with dg.DagsterInstance.get() as instance:
        with daemon_workspace(instance) as workspace:  # only the purchase sensor runs
            sensor = purchase_sensor(workspace)

        def counted(expected: int) -> bool:
            for run in instance.get_runs(
                filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])
            ):
                instance.report_run_canceled(run)
            runs = _purchase_runs(instance)
            return sum(int(r.tags["ctr_assets/purchases"]) for r in runs) >= expected

        with _daemon(environment, home, log) as daemon:
            _wait(lambda: ticks(instance, sensor), "no purchase tick", log)
            _insert(db, "first", 12)
            _wait(lambda: counted(12), "the first 12 signals were not counted", log)
            _insert(db, "just-before-the-kill", 7)
            os.kill(daemon.pid, signal.SIGKILL)  # the daemon alone, as the OOM killer would
            daemon.wait(timeout=30)
            ticks_before_restart = len(ticks(instance, sensor))
        _insert(db, "while-dead", 9)

        with _daemon(environment, home, log):
            _wait(lambda: counted(28), "the signals of the outage were not all counted", log)
            settled = len(ticks(instance, sensor))

            def quiet_tick() -> bool:
                counted(28)  # cancels what is queued, so the sensor does not wait on it
                later = ticks(instance, sensor)[settled:]
                return any("no new purchase signals" in (t.skip_reason or "") for t in later)

            _wait(quiet_tick, "no quiet tick after the outage's signals", log)
        assert len(ticks(instance, sensor)) > ticks_before_restart
        _assert_counted_once(_purchase_runs(instance), 28)
        assert not [t for t in ticks(instance, sensor) if t.status == TickStatus.FAILURE]
