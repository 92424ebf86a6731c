"""Where the project keeps its state. Read when asked, never at import time."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = "~/.ctr_assets"


def ctr_home() -> Path:
    """The project home: embedded database, model files, local Dagster home (`CTR_HOME`)."""
    return Path(os.environ.get("CTR_HOME") or DEFAULT_HOME).expanduser().resolve()


def configured_database_url() -> str | None:
    """`DATABASE_URL` if set; None means the embedded PostgreSQL under the project home."""
    return os.environ.get("DATABASE_URL") or None
