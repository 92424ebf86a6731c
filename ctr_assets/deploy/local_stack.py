"""`ctr-assets dev`: the whole product on one machine, started and stopped by one command.

It starts (or reuses) the application PostgreSQL, the embedded one when `DATABASE_URL` is
unset, keeps Dagster's own storage on PostgreSQL as well, loads the demo world into an
empty database, and runs the Dagster webserver and daemon, each in a session of its own
so that stopping it reaches every process it spawned.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psutil
import psycopg2
import requests

from ctr_assets import settings
from ctr_assets.db.connection import Database
from ctr_assets.db.schema import migrate

DAGSTER_DATABASE = "dagster"
FIRST_CHAMPION_TAG = "ctr_assets/first_champion"


@dataclass(frozen=True)
class StackPaths:
    home: Path

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    @property
    def workspace(self) -> Path:
        return self.home / "workspace.yaml"

    @property
    def logs(self) -> Path:
        return self.home / "logs"


def dagster_storage_url(db: Database) -> str:
    """`DAGSTER_POSTGRES_URL` if set; else a `dagster` database beside the application's
    (created if missing); else the application database itself."""
    configured = os.environ.get("DAGSTER_POSTGRES_URL")
    if configured:
        return configured
    head, _, query = db.url.partition("?")
    sibling = Database(
        head.rsplit("/", 1)[0] + f"/{DAGSTER_DATABASE}" + (f"?{query}" if query else "")
    )
    try:
        conn = psycopg2.connect(db.url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DAGSTER_DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{DAGSTER_DATABASE}"')
        conn.close()
    except psycopg2.Error:
        return db.sqlalchemy_url
    return sibling.sqlalchemy_url


def write_instance_files(paths: StackPaths) -> None:
    """dagster.yaml (the packaged one: storage on PostgreSQL, queue, pools) and a workspace
    that loads the code location from this installation."""
    paths.dagster_home.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    packaged = resources.files("ctr_assets.deploy") / "dagster.yaml"
    (paths.dagster_home / "dagster.yaml").write_text(packaged.read_text(encoding="utf-8"))
    paths.workspace.write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: ctr_assets.definitions\n"
        "      attribute: defs\n"
        "      location_name: ctr_assets\n"
    )


def _executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed; reinstall ctr_assets")
    return found


@dataclass
class LocalStack:
    paths: StackPaths
    db: Database
    host: str
    port: int
    processes: list[subprocess.Popen]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self, storage_url: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DAGSTER_HOME=str(self.paths.dagster_home),
            DAGSTER_POSTGRES_URL=storage_url,
            DATABASE_URL=self.db.url,
            CTR_HOME=str(self.paths.home),
            DAGSTER_WEBSERVER_URL=self.url,
        )
        return env

    def executable(self, name: str) -> str:
        """The Dagster command `name` this stack runs (this installation's)."""
        return _executable(name)

    def start(self, storage_url: str) -> None:
        env = self.environment(storage_url)
        commands = {
            "webserver": [
                self.executable("dagster-webserver"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-w",
                str(self.paths.workspace),
            ],
            "daemon": [self.executable("dagster-daemon"), "run", "-w", str(self.paths.workspace)],
        }
        for name, command in commands.items():
            log = (self.paths.logs / f"{name}.log").open("ab")
            self.processes.append(
                subprocess.Popen(
                    command,
                    env=env,
                    cwd=self.paths.home,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own group: stopping it reaches its children
                )
            )

    def wait_until_ready(self, timeout_seconds: float = 180) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{process.args[0]} exited with {process.returncode}; see {self.paths.logs}"
                    )
            try:
                if requests.get(f"{self.url}/server_info", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the webserver did not answer at {self.url}; see {self.paths.logs}")

    def train_first_champion(self, timeout_seconds: float = 120) -> str | None:
        """Launches a check through the webserver when there is no champion yet (it trains
        the first one, and the run shows in the UI); returns its run id, or None when a
        champion exists or there are no videos to learn from."""
        from ctr_assets.models.registry import ModelRegistry
        from ctr_assets.orchestration.remote import LaunchError, submit_check

        if (
            database_is_empty(self.db)
            or ModelRegistry(self.db, self.paths.home / "models").champion()
        ):
            return None
        deadline = time.monotonic() + timeout_seconds
        while True:  # the webserver answers before it has loaded the code location
            try:
                return submit_check(self.url, "manual", tags={FIRST_CHAMPION_TAG: "true"})
            except (LaunchError, requests.RequestException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def stop(self, timeout_seconds: float = 30) -> None:
        """SIGTERM to each process group, then SIGKILL to whatever is left of them."""
        family: list[psutil.Process] = []
        for process in self.processes:
            try:
                parent = psutil.Process(process.pid)
                family += [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(family, timeout=timeout_seconds)
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        for leftover in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()
        psutil.wait_procs(alive, timeout=5)
        for process in self.processes:
            process.wait(timeout=5)


def database_is_empty(db: Database) -> bool:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT NOT EXISTS (SELECT 1 FROM videos)")
        return bool(cur.fetchone()[0])


def prepare(paths: StackPaths) -> Database:
    """The application database, migrated; the embedded server stays up while this process
    lives (and stops with it unless another process still uses it)."""
    paths.home.mkdir(parents=True, exist_ok=True)
    db = Database.from_environment()
    migrate(db)
    return db


def default_paths() -> StackPaths:
    return StackPaths(settings.ctr_home())
