"""The embedded PostgreSQL: what a fresh machine without DATABASE_URL gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ctr_assets.db.connection import Database
from ctr_assets.db.schema import migrate, migration_files


def test_embedded_server_boots_from_an_empty_directory(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert not home.exists()
    db = Database.embedded(home)
    assert (home / "pgdata" / "PG_VERSION").exists()
    assert "host=" in db.url  # a Unix socket, no TCP port
    assert migrate(db) == [version for version, _ in migration_files()]
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT current_setting('listen_addresses'), count(*) FROM videos")
        assert cur.fetchone() == ("", 0)


def test_cli_fills_the_embedded_database_twice_without_duplicates(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["CTR_HOME"] = str(tmp_path / "ctr-home")
    command = [
        sys.executable,
        "-m",
        "ctr_assets.cli",
        "simulate",
        "--days",
        "6",
        "--videos",
        "120",
        "--end",
        "2026-11-01",
    ]
    runs = []
    for _ in range(2):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.split("\n", 1)[1]))
    assert runs[0]["predictions_added"] > 0
    assert runs[0]["purchases_added"] > 0
    assert runs[1]["predictions_added"] == runs[1]["purchases_added"] == 0
    assert (tmp_path / "ctr-home" / "pgdata" / "PG_VERSION").exists()
