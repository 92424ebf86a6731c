"""The demo never empties a schema it did not create: `public`, a schema of real tables, a
name carrying SQL are all refused, and nothing in the database changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctr_assets.db.connection import Database
from ctr_assets.db.demo_schema import DEMO_MARK, SchemaRefusedError, reset_demo_schema


def _count(db: Database, table: str) -> int:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")  # table names are the tests' own
        return cur.fetchone()[0]


def _schemas(db: Database) -> set[str]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT nspname FROM pg_namespace")
        return {row[0] for row in cur.fetchall()}


@pytest.fixture
def real_data(db: Database) -> Database:
    """`public` holds real rows, and so does a schema of another team's."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO videos (video_id, platform, impressions, clicks) "
            "VALUES ('real-1', 'tiktok', 1000, 30)"
        )
        cur.execute("CREATE SCHEMA analytics")
        cur.execute("CREATE TABLE analytics.revenue (day date, amount numeric)")
        cur.execute("INSERT INTO analytics.revenue VALUES ('2026-11-01', 12.5)")
    return db


SQL_NAMES = [
    "x; DROP SCHEMA public CASCADE; --",
    "ctr_demo CASCADE; DROP TABLE videos",
    'public" CASCADE; --',
    "Public",
    "",
    "a" * 64,
]


@pytest.mark.parametrize("schema", ["public", "analytics", "pg_catalog", "information_schema"])
def test_an_existing_schema_the_demo_did_not_create_is_refused(
    real_data: Database, schema: str
) -> None:
    before = _schemas(real_data)
    with pytest.raises(SchemaRefusedError, match="choose another --schema"):
        reset_demo_schema(real_data, schema)
    assert _count(real_data, "public.videos") == 1
    assert _count(real_data, "analytics.revenue") == 1
    assert _schemas(real_data) == before


@pytest.mark.parametrize("schema", SQL_NAMES)
def test_a_name_carrying_sql_never_reaches_the_server(real_data: Database, schema: str) -> None:
    before = _schemas(real_data)
    with pytest.raises(SchemaRefusedError, match="lower-case identifier"):
        reset_demo_schema(real_data, schema)
    assert _count(real_data, "public.videos") == 1
    assert _schemas(real_data) == before


def test_the_demo_creates_marks_and_empties_only_its_own_schema(real_data: Database) -> None:
    scoped = reset_demo_schema(real_data, "ctr_demo_t")
    with scoped.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT obj_description('ctr_demo_t'::regnamespace, 'pg_namespace')")
        assert cur.fetchone()[0] == DEMO_MARK
        cur.execute("INSERT INTO videos (video_id) VALUES ('demo-1')")
    assert _count(real_data, "ctr_demo_t.videos") == 1

    again = reset_demo_schema(real_data, "ctr_demo_t")  # its own: emptied
    assert _count(again, "ctr_demo_t.videos") == 0
    assert _count(real_data, "public.videos") == 1


def test_a_demo_schema_whose_mark_was_removed_is_refused(real_data: Database) -> None:
    reset_demo_schema(real_data, "ctr_demo_t")
    with real_data.connect() as conn, conn.cursor() as cur:
        cur.execute("COMMENT ON SCHEMA ctr_demo_t IS 'now holds the finance team''s tables'")
        cur.execute("INSERT INTO ctr_demo_t.videos (video_id) VALUES ('kept')")
    with pytest.raises(SchemaRefusedError, match="not created by `ctr-assets demo`"):
        reset_demo_schema(real_data, "ctr_demo_t")
    assert _count(real_data, "ctr_demo_t.videos") == 1


@pytest.mark.parametrize("schema", ["public", "analytics", SQL_NAMES[0]])
def test_demo_command_refuses_with_a_usage_error_and_leaves_every_table(
    real_data: Database, tmp_path: Path, schema: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(DATABASE_URL=real_data.url, CTR_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "-m", "ctr_assets.cli", "demo", "--schema", schema, "--days", "8"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "--schema" in done.stderr
    assert "Traceback" not in done.stderr
    assert _count(real_data, "public.videos") == 1
    assert _count(real_data, "analytics.revenue") == 1
