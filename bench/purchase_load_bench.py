"""Purchase signals under load: `n` signals from 4 concurrent writer processes while the
purchase sensor ticks, and, at the 1m and full scales, while a real `dagster-daemon` runs
the loop on the same database.

- Writers (`bench.purchase_writers`): 4 spawned processes, one row per INSERT, in
  transactions of 1-40 rows, some committing late (out of id order), some re-delivering a
  signal, some rolling back. What they committed is the truth to count against.
- The probe: `purchase_signals_sensor` evaluated through Dagster (`build_sensor_context`,
  as in `sensor_bench.py`) every 100 ms on its own cursor, against an instance with no
  runs, so every tick counts. Its tick time is the figure held to the 50 ms target.
- The daemon (`--scale 1m`, `full`): `dagster-daemon run` with the product's
  `dagster.yaml` (queued runs, the `ctr_model_training` pool of 1), only the purchase
  sensor running, every second (`CTR_PURCHASE_SENSOR_INTERVAL_SECONDS=1`), on a small demo
  world with no champion, so the first check trains one. Its checks really run. From its
  storage: what its runs counted, its tick times (including gRPC and run submission),
  and how many `retrain_check` steps ever ran at once.

Both counts must equal the committed rows: none lost, none counted twice.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import dagster as dg

from bench.databases import WORLD_END, Server
from bench.harness import BenchError, Stats
from bench.purchase_writers import write_signals
from bench.report import target
from ctr_assets.db.connection import Database
from ctr_assets.orchestration.automation_settings import AutomationSettings
from ctr_assets.orchestration.resources import CtrDatabase
from ctr_assets.orchestration.sensors import build_purchase_sensor

WRITERS = 4
SEED = 42
PROBE_INTERVAL_S = 0.1
TICK_TARGET_S = 0.050
PURCHASE_SENSOR = build_purchase_sensor(AutomationSettings())
_REPOSITORY = Path(__file__).resolve().parents[1]


class Probe:
    """The purchase sensor ticking on its own cursor, timed."""

    def __init__(self, db: Database, instance: dg.DagsterInstance) -> None:
        self.db, self.instance = db, instance
        self.cursor: str | None = None
        self.seconds: list[float] = []
        self.counted = 0
        self.batches = 0

    def tick(self) -> None:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"database": CtrDatabase(url=self.db.url)},
        )
        started = time.perf_counter()
        result = PURCHASE_SENSOR(context)
        self.seconds.append(time.perf_counter() - started)
        self.cursor = context.cursor
        if isinstance(result, dg.RunRequest):
            self.counted += int(result.tags["ctr_assets/purchases"])
            self.batches += 1


def _signal_count(db: Database) -> int:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM purchase_signals")
        return int(cur.fetchone()[0])


def run_purchase_load_bench(
    server: Server, signals: int, with_daemon: bool, log=lambda line: None
) -> dict:
    app_name = f"{server.prefix}_purchase_load"
    db = server.create(app_name)
    daemon: DaemonRun | None = None
    try:
        with dg.instance_for_test() as probe_instance, contextlib.ExitStack() as stack:
            if with_daemon:
                daemon = stack.enter_context(DaemonRun.started(server, db, log))
            probe = Probe(db, probe_instance)
            probe.tick()  # first tick: the cursor; what is already there is history
            before = _signal_count(db)
            log(f"purchase load: {signals:,} signals from {WRITERS} writers")
            started = time.perf_counter()
            context = multiprocessing.get_context("spawn")
            with context.Pool(WRITERS) as pool:
                pending = pool.starmap_async(
                    write_signals,
                    [(db.url, writer, signals // WRITERS, SEED) for writer in range(WRITERS)],
                )
                while not pending.ready():
                    probe.tick()
                    time.sleep(PROBE_INTERVAL_S)
                tallies = pending.get()
            writing_seconds = time.perf_counter() - started
            probe.tick()
            committed = sum(tally["committed"] for tally in tallies)
            in_table = _signal_count(db) - before
            if in_table != committed:
                raise BenchError(f"{in_table} new rows, but the writers committed {committed}")
            daemon_figures = daemon.settle(committed) if daemon else None
    finally:
        server.drop(app_name)
        if daemon is not None:
            server.drop(daemon.storage_name)

    ticks = Stats.of(probe.seconds)
    ordered = sorted(probe.seconds)
    return {
        "signals": signals,
        "writers": WRITERS,
        "committed": committed,
        "rolled_back": sum(tally["rolled_back"] for tally in tallies),
        "duplicates": sum(tally["duplicates"] for tally in tallies),
        "transactions": sum(tally["transactions"] for tally in tallies),
        "writing_seconds": writing_seconds,
        "rows_per_second": committed / writing_seconds,
        "probe": {
            "ticks": ticks.as_dict(),
            "p95": ordered[int(0.95 * (len(ordered) - 1))],
            "batches": probe.batches,
            "counted": probe.counted,
        },
        "daemon": daemon_figures,
        "samples": {"probe_tick_seconds": probe.seconds},
    }


class DaemonRun:
    """A `dagster-daemon` on its own Dagster storage, running only the purchase sensor."""

    def __init__(self, server: Server, db: Database, home: Path, log) -> None:
        self.server, self.db, self.home, self.log_line = server, db, home, log
        self.storage_name = f"{server.prefix}_purchase_load_dagster"
        self.process: subprocess.Popen | None = None
        self.instance: dg.DagsterInstance | None = None

    @classmethod
    @contextlib.contextmanager
    def started(cls, server: Server, db: Database, log) -> Iterator[DaemonRun]:
        with tempfile.TemporaryDirectory(prefix="ctr-bench-daemon-") as home:
            run = cls(server, db, Path(home), log)
            try:
                run.start()
                yield run
            finally:
                run.stop()

    def environment(self) -> dict[str, str]:
        storage = self.server.database(self.storage_name)
        return {
            **os.environ,
            "DAGSTER_HOME": str(self.home / "dagster_home"),
            "DAGSTER_POSTGRES_URL": storage.sqlalchemy_url,
            "DATABASE_URL": self.db.url,
            "CTR_HOME": str(self.home / "ctr_home"),
            "CTR_PURCHASE_SENSOR_INTERVAL_SECONDS": "1",
        }

    def start(self) -> None:
        from ctr_assets.simulation.populate import populate
        from ctr_assets.simulation.world import WorldSpec

        self.server.drop(self.storage_name)
        self.server._execute(f'CREATE DATABASE "{self.storage_name}"')
        populate(self.db, WorldSpec(seed=SEED, days=10, videos=800, end=WORLD_END))
        env = self.environment()
        dagster_home = Path(env["DAGSTER_HOME"])
        dagster_home.mkdir(parents=True)
        packaged = resources.files("ctr_assets.deploy") / "dagster.yaml"
        (dagster_home / "dagster.yaml").write_text(packaged.read_text(encoding="utf-8"))
        workspace = self.home / "workspace.yaml"
        workspace.write_text(
            "load_from:\n  - python_module:\n      module_name: ctr_assets.definitions\n"
            f"      attribute: defs\n      location_name: ctr_assets\n"
            f"      working_directory: {_REPOSITORY}\n"
        )
        self.instance = _instance(env)
        self.sensor = _only_the_purchase_sensor(self.instance, env)
        self.log_path = self.home / "daemon.log"
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
            env=env,
            cwd=self.home,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait(lambda: self._ticks(), "the daemon never ticked the purchase sensor", 300)
        self.log_line("purchase load: the daemon is ticking")

    def _ticks(self) -> list:
        found = self.instance.get_ticks(self.sensor[0], self.sensor[1])
        return sorted(found, key=lambda tick: tick.tick_id)

    def _runs(self) -> list[dg.DagsterRun]:
        return list(
            self.instance.get_runs(
                filters=dg.RunsFilter(tags={"ctr_assets/trigger": "purchase_signals"})
            )
        )

    def _wait(self, condition, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process is not None and self.process.poll() is not None:
                raise BenchError(f"dagster-daemon exited; see {self.log_path}")
            if time.monotonic() > deadline:
                raise BenchError(f"{what} within {timeout:.0f} s; see {self.log_path}")
            time.sleep(1)

    def settle(self, committed: int) -> dict:
        """Waits until the daemon's checks have counted every committed signal and ended."""
        finished = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}

        def done() -> bool:
            runs = self._runs()
            counted = sum(int(run.tags["ctr_assets/purchases"]) for run in runs)
            return counted >= committed and all(run.status in finished for run in runs)

        self._wait(done, "the daemon's checks did not count every signal", 900)
        runs = self._runs()
        windows = [_step_window(self.instance, run.run_id) for run in runs]
        windows = [window for window in windows if window is not None]
        durations = [
            tick.end_timestamp - tick.timestamp for tick in self._ticks() if tick.end_timestamp
        ]
        trainings = {
            record.run_id
            for record in self.instance.fetch_materializations(
                dg.AssetKey("ctr_model"), limit=1000
            ).records
        }
        return {
            "counted": sum(int(run.tags["ctr_assets/purchases"]) for run in runs),
            "checks": len(runs),
            "failed_checks": sum(run.status == dg.DagsterRunStatus.FAILURE for run in runs),
            "run_keys_unique": len({r.tags["dagster/run_key"] for r in runs}) == len(runs),
            "trainings": len(trainings),
            "max_concurrent_retrain_steps": _max_overlap(windows),
            "ticks": Stats.of(durations).as_dict() if durations else None,
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        if self.instance is not None:
            self.instance.dispose()


def _instance(env: dict[str, str]) -> dg.DagsterInstance:
    previous = {name: os.environ.get(name) for name in ("DAGSTER_HOME", "DAGSTER_POSTGRES_URL")}
    os.environ.update({name: env[name] for name in previous})
    try:
        return dg.DagsterInstance.get()
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _only_the_purchase_sensor(instance: dg.DagsterInstance, env: dict[str, str]):
    """Stops every other sensor in the daemon's storage; returns the purchase sensor's ids."""
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import ModuleTarget

    target = ModuleTarget(
        module_name="ctr_assets.definitions",
        attribute="defs",
        working_directory=str(_REPOSITORY),
        location_name="ctr_assets",
    )
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with create_test_daemon_workspace_context(target, instance) as workspace:
            location = workspace.create_request_context().get_code_location("ctr_assets")
            sensors = [s for r in location.get_repositories().values() for s in r.get_sensors()]
            for sensor in sensors:
                if sensor.name != "purchase_signals_sensor":
                    instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)
            purchase = next(s for s in sensors if s.name == "purchase_signals_sensor")
            return purchase.get_remote_origin_id(), purchase.selector_id
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _step_window(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float] | None:
    times = {
        event.dagster_event.event_type_value: event.timestamp
        for event in instance.all_logs(run_id)
        if event.dagster_event and event.dagster_event.step_key == "retrain_check"
    }
    end = times.get("STEP_SUCCESS", times.get("STEP_FAILURE"))
    return (times["STEP_START"], end) if "STEP_START" in times and end else None


def _max_overlap(windows: list[tuple[float, float]]) -> int:
    """The most windows open at one instant."""
    edges = sorted(
        itertools.chain(((start, 1) for start, _ in windows), ((end, -1) for _, end in windows)),
        key=lambda edge: (edge[0], edge[1]),
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def targets(result: dict) -> list[dict]:
    committed = result["committed"]
    found = [
        target(
            f"purchase load: probe tick median under {TICK_TARGET_S * 1000:.0f} ms",
            result["probe"]["ticks"]["median"],
            TICK_TARGET_S,
        ),
        target(
            "purchase load: signals the probe missed or counted twice",
            abs(result["probe"]["counted"] - committed),
            0,
        ),
    ]
    daemon = result["daemon"]
    if daemon:
        found += [
            target(
                "purchase load: signals the daemon missed or counted twice",
                abs(daemon["counted"] - committed),
                0,
            ),
            target(
                "purchase load: retrain steps at once, at most",
                daemon["max_concurrent_retrain_steps"],
                1,
            ),
        ]
    return found


def table_rows(result: dict) -> list[list[str]]:
    probe = result["probe"]
    ticks = Stats(**probe["ticks"])
    rows = [
        ["signals committed", f"{result['committed']:,}", "by 4 writers"],
        ["rows per second written", f"{result['rows_per_second']:,.0f}", ""],
        ["probe: counted", f"{probe['counted']:,}", f"in {probe['batches']} batches"],
        [
            "probe tick (ms)",
            f"{ticks.median * 1000:.1f}",
            f"min {ticks.min * 1000:.1f}, p95 {probe['p95'] * 1000:.1f}, "
            f"max {ticks.max * 1000:.1f}, n {ticks.n}",
        ],
    ]
    daemon = result["daemon"]
    if daemon:
        rows += [
            ["daemon: counted", f"{daemon['counted']:,}", f"in {daemon['checks']} checks"],
            ["daemon: trainings", str(daemon["trainings"]), ""],
            ["daemon: retrain steps at once", str(daemon["max_concurrent_retrain_steps"]), ""],
        ]
        if daemon["ticks"]:
            dt = Stats(**daemon["ticks"])
            rows.append(
                [
                    "daemon tick (ms)",
                    f"{dt.median * 1000:.1f}",
                    f"min {dt.min * 1000:.1f}, max {dt.max * 1000:.1f}, n {dt.n}",
                ]
            )
    return rows


def figures(result: dict) -> dict[str, float]:
    probe = result["probe"]
    found = {
        "purchase_load/committed": result["committed"],
        "purchase_load/rows_per_second": result["rows_per_second"],
        "purchase_load/probe/counted": probe["counted"],
        "purchase_load/probe/batches": probe["batches"],
        "purchase_load/probe_tick/seconds/median": probe["ticks"]["median"],
        "purchase_load/probe_tick/seconds/p95": probe["p95"],
        "purchase_load/probe_tick/seconds/max": probe["ticks"]["max"],
        "purchase_load/probe_tick_over_target": probe["ticks"]["median"] / TICK_TARGET_S,
    }
    daemon = result["daemon"]
    if daemon:
        found["purchase_load/daemon/counted"] = daemon["counted"]
        found["purchase_load/daemon/checks"] = daemon["checks"]
        found["purchase_load/daemon/trainings"] = daemon["trainings"]
        found["purchase_load/daemon/max_concurrent_retrain_steps"] = daemon[
            "max_concurrent_retrain_steps"
        ]
        if daemon["ticks"]:
            found["purchase_load/daemon_tick/seconds/median"] = daemon["ticks"]["median"]
    return found
