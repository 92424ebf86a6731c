"""The daemon's own sensor loop body, driven tick by tick from a test.

`execute_sensor_iteration` is what `dagster-daemon` runs every few seconds (a private API,
pinned here as in `test_daemon_end_to_end.py`). The code location is loaded the way the
daemon loads it, from `ctr_assets.definitions:defs` over gRPC, so it reads DATABASE_URL
and the sensor intervals from the environment the test sets before opening it.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._core.remote_representation.external import RemoteSensor
from dagster._core.scheduler.instigation import InstigatorTick, TickStatus
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import (
    GrpcServerTarget,
    ModuleTarget,
    WorkspaceLoadTarget,
)
from dagster._daemon.sensor import execute_sensor_iteration
from dagster._grpc.client import DagsterGrpcClient

ROOT = Path(__file__).resolve().parents[2]
LOAD = ["-m", "ctr_assets.definitions", "-a", "defs", "-d", str(ROOT)]
PURCHASE_SENSOR = "purchase_signals_sensor"

TARGET = ModuleTarget(
    module_name="ctr_assets.definitions",
    attribute="defs",
    working_directory=str(ROOT),
    location_name="ctr_assets",
)


@contextmanager
def code_server(environment: dict[str, str]) -> Iterator[GrpcServerTarget]:
    """One code server for the test and the processes it starts (each would otherwise load
    the definitions into a server of its own); the environment is read when it loads."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve = ["-h", "127.0.0.1", "-p", str(port), "--location-name", "ctr_assets"]
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster", "api", "grpc", *LOAD, *serve, "--log-level", "warning"],
        env=environment,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    try:
        client = DagsterGrpcClient(port=port, host="127.0.0.1")
        deadline = time.monotonic() + 120
        while True:
            try:
                client.ping("ready?")
                break
            except DagsterUserCodeUnreachableError:
                assert process.poll() is None, "the code server exited"
                assert time.monotonic() < deadline, "the code server never answered"
                time.sleep(0.2)
        yield GrpcServerTarget(host="127.0.0.1", port=port, socket=None, location_name="ctr_assets")
    finally:
        process.kill()
        process.wait(timeout=30)


@contextmanager
def daemon_workspace(
    instance: dg.DagsterInstance, target: WorkspaceLoadTarget = TARGET
) -> Iterator[WorkspaceProcessContext]:
    """The code location over gRPC, with only the purchase sensor running."""
    with create_test_daemon_workspace_context(target, instance) as context:
        for sensor in _sensors(context):
            if sensor.name != PURCHASE_SENSOR:
                instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)
        yield context


def _sensors(context: WorkspaceProcessContext) -> list[RemoteSensor]:
    location = context.create_request_context().get_code_location("ctr_assets")
    return [s for repo in location.get_repositories().values() for s in repo.get_sensors()]


def purchase_sensor(context: WorkspaceProcessContext) -> RemoteSensor:
    return next(s for s in _sensors(context) if s.name == PURCHASE_SENSOR)


def iterate(context: WorkspaceProcessContext, crash_at: dict | None = None) -> None:
    """One pass of the daemon's sensor loop (`crash_at`: Dagster's own crash points, e.g.
    {"RUN_IDS_RESERVED": signal.SIGKILL}, for the purchase sensor)."""
    list(
        execute_sensor_iteration(
            context,
            logging.getLogger("fault-test-daemon"),
            threadpool_executor=None,
            submit_threadpool_executor=None,
            debug_crash_flags={PURCHASE_SENSOR: crash_at} if crash_at else None,
        )
    )


def ticks(instance: dg.DagsterInstance, sensor: RemoteSensor) -> list[InstigatorTick]:
    """Every tick of the sensor, oldest first."""
    found = instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)
    return sorted(found, key=lambda t: t.tick_id)


def stored_cursor(instance: dg.DagsterInstance, sensor: RemoteSensor) -> str | None:
    state = instance.get_instigator_state(sensor.get_remote_origin_id(), sensor.selector_id)
    return state.instigator_data.cursor if state and state.instigator_data else None


def tick_once(
    context: WorkspaceProcessContext,
    instance: dg.DagsterInstance,
    timeout: float = 60,
    crash_at: dict | None = None,
) -> InstigatorTick:
    """Iterates until the purchase sensor has ended one more tick (a new one, or one a
    killed daemon left started and this pass resumed), respecting its minimum interval;
    returns it."""
    sensor = purchase_sensor(context)
    known = ticks(instance, sensor)
    last = (known[-1].tick_id, known[-1].status) if known else (None, None)
    deadline = time.monotonic() + timeout
    while True:
        iterate(context, crash_at)
        done = ticks(instance, sensor)
        ended = bool(done) and done[-1].status != TickStatus.STARTED
        if ended and (done[-1].tick_id != last[0] or last[1] == TickStatus.STARTED):
            return done[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no purchase tick ended in {timeout} s: {done[-1:]}")
        time.sleep(0.25)


def error_text(tick: InstigatorTick) -> str:
    """A failed tick's error with every cause under it (Dagster wraps the sensor's own)."""
    parts, error = [], tick.error
    while error is not None:
        parts.append(error.message)
        error = error.cause or error.context
    return "\n".join(parts)
