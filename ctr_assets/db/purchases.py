"""New purchase signals since a cursor, counted so that none is ever missed.

The cursor is a transaction id (xid8), not a row id. Rows are counted once the
transaction that inserted them is older than every transaction still running
(`pg_snapshot_xmin`): by then all of them are visible and no row with an older
`ingest_xid` can still appear. A row whose transaction is still open, or began after an
open one, simply waits for a later tick. Duplicate deliveries never become rows
(`transaction_id` is unique), so they are never counted. Each tick reads an index range
on `ingest_xid`: its cost follows the new rows, not the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctr_assets.db.connection import Database


@dataclass(frozen=True)
class PurchaseBatch:
    count: int
    first_id: int | None
    last_id: int | None
    since_xid: int  # the cursor the batch was read from (inclusive)
    until_xid: int  # the next cursor (exclusive bound of this batch)


def purchase_horizon(db: Database) -> int:
    """The oldest transaction still running: rows of older transactions are all visible."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        return int(cur.fetchone()[0])


def new_purchase_signals(db: Database, since_xid: int) -> PurchaseBatch:
    """Signals inserted by transactions in `[since_xid, horizon)`."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        horizon = int(cur.fetchone()[0])
        # A new statement, so a new snapshot: every transaction below `horizon` has ended
        # and its rows are visible to it.
        cur.execute(
            "SELECT count(*), min(id), max(id) FROM purchase_signals "
            "WHERE ingest_xid >= %s::text::xid8 AND ingest_xid < %s::text::xid8",
            (str(since_xid), str(horizon)),
        )
        count, first_id, last_id = cur.fetchone()
    return PurchaseBatch(int(count), first_id, last_id, since_xid, max(horizon, since_xid))
