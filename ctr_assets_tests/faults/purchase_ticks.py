"""Purchase sensor ticks and signal writes, shared by the fault tests."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import psycopg2
import psycopg2.extensions

from ctr_assets.db.connection import Database
from ctr_assets.orchestration.automation_settings import AutomationSettings
from ctr_assets.orchestration.resources import CtrDatabase
from ctr_assets.orchestration.sensors import build_purchase_sensor

PURCHASE_SENSOR = build_purchase_sensor(AutomationSettings())


@dataclass
class Tick:
    result: dg.RunRequest | dg.SkipReason
    cursor: str | None

    @property
    def counted(self) -> int:
        """Signals this tick counted (0 for a skip)."""
        if isinstance(self.result, dg.RunRequest):
            return int(self.result.tags["ctr_assets/purchases"])
        return 0

    @property
    def words(self) -> str:
        return self.result.skip_message if isinstance(self.result, dg.SkipReason) else ""


def tick(instance: dg.DagsterInstance, db: Database, cursor: str | None) -> Tick:
    """One evaluation of `purchase_signals_sensor`, as the daemon makes it."""
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"database": CtrDatabase(url=db.url)}
    )
    result = PURCHASE_SENSOR(context)
    return Tick(result, context.cursor)


def insert_signal(conn: psycopg2.extensions.connection, transaction_id: str) -> int | None:
    """One purchase signal in the connection's open transaction; None for a duplicate."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO purchase_signals (transaction_id, video_id, amount, currency, "
            "occurred_at) VALUES (%s, 'v1', 25.0, 'USD', now()) "
            "ON CONFLICT (transaction_id) DO NOTHING RETURNING id",
            (transaction_id,),
        )
        row = cur.fetchone()
    return row[0] if row else None


def signal_count(db: Database) -> int:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM purchase_signals")
        return int(cur.fetchone()[0])
