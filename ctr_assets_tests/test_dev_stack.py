"""`ctr-assets dev` starts the whole local stack and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

from ctr_assets_tests.dev_stack import BIN, DevStack, start_dev


def _embedded_postgres(home: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "postgres" in cmdline and str(home / "pgdata") in cmdline:
            found.append(process)
    return found


def test_sigint_stops_every_process_it_started(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stack = start_dev(home, {}, unset=("DATABASE_URL", "DAGSTER_POSTGRES_URL"))
    try:
        stack.wait_until_answering()
        assert "loaded the demo world" in stack.log()
        started = psutil.Process(stack.process.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in started)
        assert "dagster-webserver" in names
        assert "dagster-daemon" in names
        postgres = _embedded_postgres(home)
        assert postgres, "the embedded PostgreSQL is not running"
        assert stack.interrupt() == 0, stack.log()
    finally:
        if stack.process.poll() is None:
            stack.process.send_signal(signal.SIGKILL)
    survivors = [p for p in [*started, *postgres] if p.is_running() and p.status() != "zombie"]
    assert survivors == [], [p.cmdline() for p in survivors]
    assert "stopped." in stack.log()


_FIRST_CHAMPION_RUNS = """
{ runsOrError(filter: {tags: [{key: "ctr_assets/first_champion", value: "true"}]}) {
    ... on Runs { results { runId status jobName } } } }
"""


def _first_champion_run(stack: DevStack, timeout_seconds: float = 300) -> dict:
    """The run `ctr-assets dev` launched for the first champion, once it has finished."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        runs = stack.graphql(_FIRST_CHAMPION_RUNS)["runsOrError"]["results"]
        if runs and runs[0]["status"] in {"SUCCESS", "FAILURE", "CANCELED"}:
            return runs[0]
        time.sleep(2)
    raise AssertionError(f"no finished first-champion run:\n{stack.log()}")


def test_a_fresh_stack_trains_the_first_champion_at_once_and_a_second_run_reuses_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    for attempt in range(2):
        stack = start_dev(home, {}, unset=("DATABASE_URL", "DAGSTER_POSTGRES_URL"))
        try:
            stack.wait_until_answering()
            loaded = "loaded the demo world" in stack.log()
            assert loaded == (attempt == 0), stack.log()
            if attempt == 0:
                # Right after the demo data, through a Dagster run (it shows in the UI).
                run = _first_champion_run(stack)
                assert run["jobName"] == "retrain_check_job"
                assert run["status"] == "SUCCESS", stack.log()
                assert f"/runs/{run['runId']}" in stack.log()
                champion = subprocess.run(
                    [str(BIN / "ctr-assets"), "models", "champion"],
                    env={**_user_env(), "CTR_HOME": str(home)},
                    capture_output=True,
                    text=True,
                    check=False,
                )
                assert champion.returncode == 0, champion.stderr
                assert json.loads(champion.stdout)["reason"].startswith("no champion yet")
            else:
                time.sleep(5)  # time enough to launch one, were it to
                assert "first champion:" not in stack.log(), stack.log()
                runs = stack.graphql(_FIRST_CHAMPION_RUNS)["runsOrError"]["results"]
                assert len(runs) == 1  # the first stack's: a champion exists now
        finally:
            stack.interrupt()


def _user_env() -> dict[str, str]:
    unset = {"DATABASE_URL", "DAGSTER_POSTGRES_URL", "DAGSTER_HOME"}
    return {k: v for k, v in os.environ.items() if k not in unset}
