"""The benchmark databases: generated once, kept, and reused while they still match.

One database per kind and size, named by what it holds (`<prefix>_videos_<n>`,
`<prefix>_signals_<n>`; see `bench.world_data` and `bench.signal_data`). Each records what
it was generated from in its comment; it is reused when that matches and its row count is
right, else dropped and generated again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg2

from ctr_assets.db.connection import Database
from ctr_assets.db.schema import migrate

# Every generated world ends here, so the rows and results never depend on the clock.
WORLD_END = datetime(2026, 11, 1, tzinfo=UTC)
GENERATOR_VERSION = 2  # bump when the generated rows change (2: prediction_records.platform)

Log = Callable[[str], None]

DATA_DIR = Path(__file__).resolve().parent / ".data"


@dataclass(frozen=True)
class Server:
    """The PostgreSQL server the benchmark databases live on."""

    admin_url: str
    prefix: str = "ctr_bench"

    def database(self, name: str) -> Database:
        head, _, query = self.admin_url.partition("?")
        base = head.rsplit("/", 1)[0]
        return Database(f"{base}/{name}" + (f"?{query}" if query else ""))

    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = psycopg2.connect(self.admin_url)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def comment(self, name: str) -> str | None:
        rows = self._execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        )
        return rows[0][0] if rows else None

    def create(self, name: str) -> Database:
        self.drop(name)
        self._execute(f'CREATE DATABASE "{name}"')
        db = self.database(name)
        migrate(db)
        return db

    def set_comment(self, name: str, comment: str) -> None:
        self._execute(f'COMMENT ON DATABASE "{name}" IS {_literal(comment)}')

    def drop(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(DATA_DIR / name, ignore_errors=True)

    def names(self) -> list[str]:
        rows = self._execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1",
            (self.prefix + "\\_%",),
        )
        return [row[0] for row in rows]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def model_dir(database_name: str) -> Path:
    """Where the model files of a benchmark database's registry live."""
    return DATA_DIR / database_name / "models"


def count(db: Database, sql: str, params: tuple = ()) -> int:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return int(cur.fetchone()[0])


def vacuum_analyze(db: Database, *tables: str) -> None:
    """What autovacuum would have done by the time anyone queries: stats and visibility."""
    conn = psycopg2.connect(db.url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for table in tables:
                cur.execute(f"VACUUM (ANALYZE) {table}")
    finally:
        conn.close()


def ensure(
    server: Server,
    name: str,
    manifest: dict,
    rows_sql: str,
    rows: int,
    build: Callable[[Database], None],
    *,
    regenerate: bool,
    log: Log,
) -> Database:
    """The database `name` as `manifest` describes it: reused if it matches, else built."""
    wanted = json.dumps(manifest, sort_keys=True)
    if not regenerate and server.comment(name) == wanted:
        db = server.database(name)
        found = count(db, rows_sql)
        if found == rows:
            log(f"reusing {name} ({rows:,} rows)")
            return db
        log(f"{name} holds {found:,} rows, not {rows:,}: generating it again")
    started = datetime.now(UTC)
    log(f"generating {name} ...")
    db = server.create(name)
    build(db)
    server.set_comment(name, wanted)
    log(f"generated {name} in {(datetime.now(UTC) - started).total_seconds():.0f} s")
    return db
