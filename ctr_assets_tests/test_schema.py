from __future__ import annotations

import threading

import pytest

from ctr_assets.db.connection import Database, libpq_url
from ctr_assets.db.schema import migrate, migration_files

INPUT_TABLES = ("videos", "prediction_records", "purchase_signals")
OWN_TABLES = ("model_versions", "champion_history", "retrain_decisions", "schema_migrations")


def _tables(db: Database) -> set[str]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in cur.fetchall()}


def _indexes(db: Database, table: str) -> dict[str, str]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", (table,))
        return dict(cur.fetchall())


def test_migrate_creates_every_table_once_and_is_idempotent(empty_db: Database) -> None:
    first = migrate(empty_db)
    assert first == [version for version, _ in migration_files()]
    assert set(INPUT_TABLES) | set(OWN_TABLES) <= _tables(empty_db)
    assert migrate(empty_db) == []
    assert migrate(empty_db) == []
    with empty_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM schema_migrations")
        assert cur.fetchone()[0] == len(first)


def test_concurrent_migrations_apply_each_file_once(empty_db: Database) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(empty_db))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(len(r) for r in results) == [0, 0, 0, len(migration_files())]


def test_input_tables_created_by_another_service_are_kept(empty_db: Database) -> None:
    with empty_db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE videos (video_id text PRIMARY KEY, impressions bigint, "
            "clicks bigint, owner_team text)"
        )
        cur.execute("INSERT INTO videos VALUES ('v1', 500, 10, 'growth')")
    migrate(empty_db)
    with empty_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT video_id, owner_team FROM videos")
        assert cur.fetchall() == [("v1", "growth")]


def test_indexes_for_time_windows_and_cursors_exist(db: Database) -> None:
    predictions = _indexes(db, "prediction_records")
    assert "(model_version, predicted_at)" in predictions["prediction_records_model_time_idx"]
    assert "(resolved_at)" in predictions["prediction_records_resolved_at_idx"]
    purchases = _indexes(db, "purchase_signals")
    assert any("(id)" in definition for definition in purchases.values())
    assert any("(transaction_id)" in d and "UNIQUE" in d for d in purchases.values())
    assert "(created_at)" in _indexes(db, "videos")["videos_created_at_idx"]


def test_decision_statuses_are_constrained(db: Database) -> None:
    import psycopg2

    with pytest.raises(psycopg2.errors.CheckViolation), db.connect() as conn:
        conn.cursor().execute(
            "INSERT INTO retrain_decisions (checked_at, trigger, status, reason, threshold, "
            "record) VALUES (now(), 'manual', 'maybe', 'x', 0.02, '{}')"
        )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/d", "postgresql://u:p@h:5432/d"),
        ("postgresql+psycopg2://u@h/d", "postgresql://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql://u@h/d"),
        ("postgres://u@h/d", "postgresql://u@h/d"),
        (
            "postgresql://postgres:@/postgres?host=/tmp/x",
            "postgresql://postgres:@/postgres?host=/tmp/x",
        ),
    ],
)
def test_libpq_url_accepts_the_usual_spellings(given: str, expected: str) -> None:
    assert libpq_url(given) == expected


def test_libpq_url_rejects_other_databases() -> None:
    with pytest.raises(ValueError, match="PostgreSQL URL"):
        libpq_url("sqlite:///ctr.db")


def test_redacted_url_hides_the_password() -> None:
    db = Database("postgresql://app:s3cret@db:5432/ctr")
    assert "s3cret" not in db.redacted_url()
    assert db.redacted_url() == "postgresql://app:***@db:5432/ctr"
    assert db.sqlalchemy_url == "postgresql+psycopg2://app:s3cret@db:5432/ctr"


def test_db_init_names_what_it_applied_then_nothing(empty_db: Database) -> None:
    from click.testing import CliRunner

    from ctr_assets.cli import main

    env = {"DATABASE_URL": empty_db.url}
    first = CliRunner().invoke(main, ["db", "init"], env=env)
    again = CliRunner().invoke(main, ["db", "init"], env=env)

    assert first.exit_code == 0, first.output
    versions = ", ".join(version for version, _ in migration_files())
    assert f"applied now: {versions}" in first.output
    assert again.exit_code == 0, again.output
    assert "applied now: nothing" in again.output
