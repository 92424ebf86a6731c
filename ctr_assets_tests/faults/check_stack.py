"""The check stack as deployed, for tests that kill parts of it.

A code server (`dagster api grpc`, as the `user_code` service runs it: each run's worker is
its child process), a real `dagster-daemon` (the run queue, run monitoring, sensors) and
Dagster's storage on PostgreSQL, all under the repository's own `dagster.yaml`. Only the
monitoring intervals are shortened, so that what takes half a minute in production takes
seconds here; everything else is the shipped configuration. The daemon runs only the
sensor that records failed checks: the data sensors and the schedule are stopped, so no
run starts but the ones a test launches.

Each process is started in a session of its own and stopped by its process group (the
code server and the daemon ignore SIGTERM when started from a non-interactive shell).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import GrpcServerTarget
from dagster._grpc.client import DagsterGrpcClient

from ctr_assets.faults import POINTS_DIRECTORY
from ctr_assets.orchestration.jobs import RETRAIN_CHECK_JOB

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVE = ("-m", "ctr_assets.definitions", "-a", "defs", "--location-name", "ctr_assets")
POOL = "ctr_model_training"
LOCATION = "ctr_assets"
RECORDING_SENSOR = "ctr_record_failed_check"
# Run monitoring as shipped, scaled down: poll every second, free a dead run's slot 2 s
# after it ended. The bound a test asserts follows from these two.
POLL_SECONDS = 1
FREE_SLOTS_AFTER_SECONDS = 2


def instance_yaml() -> str:
    """The repository's dagster.yaml with the monitoring intervals shortened; refuses one
    that does not free the slots of dead runs (Dagster then never frees them)."""
    shipped = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    monitoring = shipped["run_monitoring"]
    assert monitoring.get("enabled") is True, monitoring
    assert "free_slots_after_run_end_seconds" in monitoring, (
        "dagster.yaml does not set run_monitoring.free_slots_after_run_end_seconds: "
        "the pool slot of a killed check would never be freed"
    )
    monitoring["poll_interval_seconds"] = POLL_SECONDS
    monitoring["free_slots_after_run_end_seconds"] = FREE_SLOTS_AFTER_SECONDS
    return yaml.safe_dump(shipped)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """Kills the process group this test started (the process and every child of it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@dataclass
class CheckStack:
    instance: dg.DagsterInstance
    workspace: WorkspaceProcessContext
    points: Path
    logs: Path
    daemon: subprocess.Popen | None = None

    def arm(self, point: str) -> None:
        (self.points / point).touch()

    def disarm(self, point: str) -> None:
        (self.points / point).unlink(missing_ok=True)
        (self.points / f"{point}.paused").unlink(missing_ok=True)

    def paused_pid(self, point: str, run_id: str, timeout: float = 180) -> int:
        """The pid of the process that paused at `point` (the run worker)."""
        paused = self.points / f"{point}.paused"
        deadline = time.monotonic() + timeout
        while not paused.exists():
            run = self.instance.get_run_by_id(run_id)
            assert run is not None
            assert not run.is_finished, f"run {run_id} ended ({run.status}) before {point}"
            assert time.monotonic() < deadline, f"no run paused at {point}:\n{self.log_tail()}"
            time.sleep(0.1)
        return int(paused.read_text())

    def run_worker(self, run_id: str) -> int:
        """The pid of the run's worker, as its code server logged it when it started it."""
        for entry in self.instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            if (entry.message or "").startswith("Started process for run"):
                data = entry.dagster_event.engine_event_data
                return int(data.metadata["pid"].value)
        raise AssertionError(f"run {run_id} logged no run worker")

    def launch(self, trigger: str = "manual", run_config: dict | None = None) -> str:
        """Submits the whole check job to the queue, as the UI or a sensor does."""
        context = self.workspace.create_request_context()
        location = context.get_code_location(LOCATION)
        job = location.get_job(
            JobSubsetSelector(
                location_name=LOCATION,
                repository_name="__repository__",
                job_name=RETRAIN_CHECK_JOB,
                op_selection=None,
            )
        )
        plan = location.get_execution_plan(
            job,
            run_config or {},
            step_keys_to_execute=None,
            known_state=None,
            instance=self.instance,
        )
        run = self.instance.create_run(
            job_name=job.name,
            run_id=None,
            run_config=run_config or {},
            resolved_op_selection=None,
            step_keys_to_execute=None,
            op_selection=None,
            status=None,
            root_run_id=None,
            parent_run_id=None,
            tags={**job.tags, "ctr_assets/trigger": trigger},
            job_snapshot=job.job_snapshot,
            execution_plan_snapshot=plan.execution_plan_snapshot,
            parent_job_snapshot=job.parent_job_snapshot,
            remote_job_origin=job.get_remote_origin(),
            job_code_origin=job.get_python_origin(),
            asset_selection=None,
            asset_check_selection=None,
            asset_graph=location.get_repository("__repository__").asset_graph,
        )
        self.instance.submit_run(run.run_id, context)
        return run.run_id

    def wait_until_finished(self, run_id: str, timeout: float = 240) -> dg.DagsterRun:
        deadline = time.monotonic() + timeout
        while True:
            run = self.instance.get_run_by_id(run_id)
            assert run is not None
            if run.is_finished:
                return run
            assert time.monotonic() < deadline, f"run {run_id} still {run.status}"
            time.sleep(0.2)

    def slot_holders(self) -> set[str]:
        """Runs holding or waiting for a slot of the training pool."""
        info = self.instance.event_log_storage.get_concurrency_info(POOL)
        return info.active_run_ids | {step.run_id for step in info.pending_steps}

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.logs.glob("*.log"))
        )


@contextlib.contextmanager
def check_stack(environment: dict[str, str], home: Path) -> Iterator[CheckStack]:
    """Starts the code server and, once `start_daemon` is called, the daemon.

    `environment` must hold DATABASE_URL, CTR_HOME and DAGSTER_POSTGRES_URL; DAGSTER_HOME
    (under `home`) and the fault points directory are added here.
    """
    dagster_home, points, logs = home / "dagster_home", home / "fault_points", home / "logs"
    for folder in (dagster_home, points, logs):
        folder.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(instance_yaml())
    env = {**environment, "DAGSTER_HOME": str(dagster_home), POINTS_DIRECTORY: str(points)}
    port = _free_port()
    code_server = subprocess.Popen(
        [str(BIN / "dagster"), "api", "grpc", "-h", "127.0.0.1", "-p", str(port), *SERVE],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=(logs / "code_server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack: CheckStack | None = None
    try:
        client = DagsterGrpcClient(port=port, host="127.0.0.1")
        deadline = time.monotonic() + 120
        while True:
            try:
                client.ping("ready?")
                break
            except DagsterUserCodeUnreachableError:
                assert code_server.poll() is None, (logs / "code_server.log").read_text()
                assert time.monotonic() < deadline, "the code server never answered"
                time.sleep(0.2)
        target = GrpcServerTarget(host="127.0.0.1", port=port, socket=None, location_name=LOCATION)
        instance = dg.DagsterInstance.from_config(str(dagster_home))
        with instance, create_test_daemon_workspace_context(target, instance) as workspace:
            _only_the_recording_sensor(instance, workspace)
            (home / "workspace.yaml").write_text(
                yaml.safe_dump(
                    {
                        "load_from": [
                            {
                                "grpc_server": {
                                    "host": "127.0.0.1",
                                    "port": port,
                                    "location_name": LOCATION,
                                }
                            }
                        ]
                    }
                )
            )
            stack = CheckStack(instance, workspace, points, logs)
            stack.daemon = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", str(home / "workspace.yaml")],
                env=env,
                cwd=home,
                stdin=subprocess.DEVNULL,
                stdout=(logs / "daemon.log").open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            yield stack
    finally:
        if stack is not None and stack.daemon is not None:
            _stop(stack.daemon)
        _stop(code_server)  # its group holds any run worker still alive


def _only_the_recording_sensor(
    instance: dg.DagsterInstance, workspace: WorkspaceProcessContext
) -> None:
    location = workspace.create_request_context().get_code_location(LOCATION)
    for repository in location.get_repositories().values():
        for sensor in repository.get_sensors():
            if sensor.name != RECORDING_SENSOR:
                instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)
        for schedule in repository.get_schedules():
            instance.stop_schedule(schedule.get_remote_origin_id(), schedule.selector_id, schedule)
