"""Schema migrations: numbered SQL files applied once each, in order, under a lock.

`db/migrations/NNNN_name.sql` files are the whole history of the schema. A change to the
schema is a new file, never an edit of an applied one; `schema_migrations` records which
have run, so every command can call `migrate` cheaply and concurrently.
"""

from __future__ import annotations

from importlib import resources

from ctr_assets.db.connection import Database

# Any fixed number: serialises concurrent migrators on one database.
_MIGRATION_LOCK = 7_316_004_211


def migration_files() -> list[tuple[str, str]]:
    """(version, SQL) pairs in the order they apply."""
    folder = resources.files("ctr_assets.db") / "migrations"
    files = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return [(name.removesuffix(".sql"), sql) for name, sql in files]


def migrate(db: Database) -> list[str]:
    """Applies the migrations this database has not seen; returns their versions."""
    applied_now: list[str] = []
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        cur.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    text PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        cur.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in cur.fetchall()}
        for version, sql in migration_files():
            if version in done:
                continue
            cur.execute(sql)
            cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied_now.append(version)
    return applied_now


def open_database(*, keep_embedded_running: bool = False) -> Database:
    """The configured database with its schema up to date: what every command starts with."""
    db = Database.from_environment(keep_embedded_running=keep_embedded_running)
    migrate(db)
    return db
