"""Writes to the input tables, as the services that own them would make them.

Each takes an Arrow table, lands it in a temporary staging table with binary COPY (ADBC
ingest) and merges it with one statement, so a batch is all-or-nothing and re-running
the same batch changes nothing.
"""

from __future__ import annotations

import pyarrow as pa

from ctr_assets.db.connection import Database


def _merge(db: Database, table: pa.Table, merge_sql: str) -> int:
    if table.num_rows == 0:
        return 0
    with db.connect_arrow() as conn:
        with conn.cursor() as cur:
            cur.adbc_ingest("staged", table, mode="replace", temporary=True)
            cur.execute(merge_sql)
            changed = cur.rowcount
            cur.execute("DROP TABLE staged")
        conn.commit()
    return int(changed)


def _columns(table: pa.Table) -> str:
    return ", ".join(table.column_names)


def upsert_videos(db: Database, table: pa.Table) -> int:
    """Inserts new videos and refreshes the performance of known ones."""
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in table.column_names if c != "video_id")
    return _merge(
        db,
        table,
        f"INSERT INTO videos ({_columns(table)}) SELECT {_columns(table)} FROM staged "
        f"ON CONFLICT (video_id) DO UPDATE SET {updates}",
    )


def insert_predictions(db: Database, table: pa.Table) -> int:
    """Records predictions; a (video, model version) pair already recorded is skipped."""
    columns = _columns(table)
    return _merge(
        db,
        table,
        f"INSERT INTO prediction_records ({columns}) SELECT {columns} FROM staged s "
        "WHERE NOT EXISTS (SELECT 1 FROM prediction_records p "
        "WHERE p.video_id = s.video_id AND p.model_version = s.model_version)",
    )


def resolve_predictions(db: Database, outcomes: pa.Table) -> int:
    """Fills the actual outcome into every still-open prediction made for those videos."""
    assignments = ", ".join(f"{c} = s.{c}" for c in outcomes.column_names if c != "video_id")
    return _merge(
        db,
        outcomes,
        f"UPDATE prediction_records p SET {assignments} FROM staged s "
        "WHERE p.video_id = s.video_id AND p.resolved_at IS NULL "
        "AND p.predicted_at <= s.resolved_at",
    )


def insert_purchases(db: Database, table: pa.Table) -> int:
    """Records purchase signals; a transaction already recorded is skipped."""
    columns = _columns(table)
    return _merge(
        db,
        table,
        f"INSERT INTO purchase_signals ({columns}) SELECT {columns} FROM staged "
        "ON CONFLICT (transaction_id) DO NOTHING",
    )
