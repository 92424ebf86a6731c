"""`ctr-assets dev` starts the whole local stack and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil

from ctr_assets_tests.dev_stack import start_dev


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


def test_a_second_run_reuses_the_data(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for attempt in range(2):
        stack = start_dev(home, {}, unset=("DATABASE_URL", "DAGSTER_POSTGRES_URL"))
        try:
            stack.wait_until_answering()
            loaded = "loaded the demo world" in stack.log()
            assert loaded == (attempt == 0), stack.log()
        finally:
            stack.interrupt()
