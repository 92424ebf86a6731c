"""New purchase signals since a cursor: every committed signal counted exactly once, and no
open transaction anywhere on the server can hold the count back.

Every row carries `ingest_xid`, the id of the (top-level) transaction that inserted it
(migration 0002). The cursor is the MVCC snapshot of the previous tick, in short: its
horizon `xid` (`pg_snapshot_xmax`) and its `pending` xids (`pg_snapshot_xip`, the
transactions still open then). A tick takes one snapshot S (REPEATABLE READ) and in it
counts the rows it can see whose `ingest_xid` is at or above the cursor's horizon or is
one of its pending xids; S's own horizon and open xids become the next cursor.

Why that counts every signal once:
- S sees a row iff the row's transaction committed before S was taken. Of every xid
  below xmax(S), those not in xip(S) had ended (committed or aborted) when S was taken;
  those in xip(S), and every xid at or above xmax(S), had not.
- So "`ingest_xid >= xmax(C)` or `ingest_xid` in xip(C)" means exactly "the inserting
  transaction had not ended at the cursor's snapshot C": the rows a tick counts are
  those visible in S and not in C. Snapshots only grow (a transaction that had ended
  before C had ended before S), so consecutive ticks count disjoint sets whose union is
  every committed row: nothing twice, nothing missed, whatever order writers commit in.
- An open transaction (a writer that is slow to commit, a forgotten `psql` idle in a
  transaction, on any database of the server) is one xid in `pending`: rows committed
  around it are counted at once, its own rows on the first tick after it commits, and
  if it aborts it drops out of the next cursor. No tick waits for it.
- `pg_current_xact_id()` is the top-level xid, the only kind a snapshot lists, so rows
  written under a savepoint are covered. xid8 does not wrap, so a pending xid is never
  confused with a later one; and no commit log is consulted (`pg_xact_status` would say
  NULL for xids old enough to be truncated from it): visibility in S decides.
- An old cursor `{"xid": N}` (the earlier format, N being the then oldest running
  transaction) reads as horizon N with nothing pending: every xid below N had ended.

After a crash PostgreSQL can hand out again an xid whose WAL never reached disk (one that
aborted, or committed with `synchronous_commit = off`, just before): a signal written
under it would sit below the cursor and never be counted. So each tick then records its
horizon in `purchase_sensor_ticks` and commits synchronously, which flushes the WAL past
every transaction the snapshot saw end: no xid below the cursor can be handed out again.

Duplicate deliveries never become rows (`transaction_id` is unique). Each tick reads the
`ingest_xid` index from the horizon on plus one look-up per pending xid: its cost follows
the new rows and the open transactions, not the table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg2.extensions

from ctr_assets.db.connection import Database

SENSOR_NAME = "purchase_signals_sensor"


@dataclass(frozen=True)
class PurchaseCursor:
    """Where counting stands: rows of transactions below `xid` are counted, except those
    of the `pending` ones (still open when the cursor was taken)."""

    xid: int
    pending: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, text: str) -> PurchaseCursor:
        data = json.loads(text)
        return cls(int(data["xid"]), tuple(sorted(int(x) for x in data.get("pending", ()))))

    def to_json(self) -> str:
        return json.dumps({"xid": self.xid, "pending": list(self.pending)})


@dataclass(frozen=True)
class OpenTransaction:
    """A transaction that holds an xid and has not ended: its rows, if any, are not
    counted yet. As `pg_stat_activity` (or `pg_prepared_xacts`) shows it."""

    pid: int | None  # None: a prepared transaction, no session holds it
    state: str | None
    seconds_open: float | None
    database: str | None
    application: str | None
    prepared_as: str | None  # the gid of a prepared transaction

    def describe(self) -> str:
        age = "" if self.seconds_open is None else f" for {_duration(self.seconds_open)}"
        where = f", database {self.database}" if self.database else ""
        if self.pid is None:
            return f"prepared transaction {self.prepared_as!r} ({age.strip()}{where})"
        app = f", application {self.application!r}" if self.application else ""
        return f"pid {self.pid} ({self.state or 'state hidden'}{age}{where}{app})"


@dataclass(frozen=True)
class PurchaseBatch:
    count: int
    first_id: int | None
    last_id: int | None
    since: PurchaseCursor  # the cursor the batch was read from
    until: PurchaseCursor  # the next cursor


def _snapshot_cursor(cur: psycopg2.extensions.cursor) -> PurchaseCursor:
    cur.execute(
        "SELECT pg_snapshot_xmax(s)::text, "
        "ARRAY(SELECT x::text FROM pg_snapshot_xip(s) x ORDER BY 1) "
        "FROM pg_current_snapshot() s"
    )
    xmax, xip = cur.fetchone()
    return PurchaseCursor(int(xmax), tuple(sorted(int(x) for x in xip)))


def _make_durable(conn: psycopg2.extensions.connection, horizon: PurchaseCursor) -> None:
    """Records the horizon and commits synchronously: the WAL is flushed past every
    transaction the tick's snapshot saw end (see the module docstring)."""
    # Its own transaction, read committed: two sensors writing at once wait, never fail.
    conn.set_session(isolation_level="READ COMMITTED")
    with conn.cursor() as cur:
        cur.execute("SET LOCAL synchronous_commit = on")
        cur.execute(
            "INSERT INTO purchase_sensor_ticks (sensor, horizon_xid, pending_xids, ticked_at) "
            "VALUES (%s, %s::text::xid8, %s, now()) "
            "ON CONFLICT (sensor) DO UPDATE SET horizon_xid = excluded.horizon_xid, "
            "pending_xids = excluded.pending_xids, ticked_at = excluded.ticked_at",
            (SENSOR_NAME, str(horizon.xid), len(horizon.pending)),
        )
    conn.commit()


def first_purchase_cursor(db: Database) -> PurchaseCursor:
    """The cursor of a first tick: signals committed from now on count, older ones are
    history."""
    with db.connect() as conn:
        conn.set_session(isolation_level="REPEATABLE READ")
        with conn.cursor() as cur:
            cursor = _snapshot_cursor(cur)
        conn.commit()
        _make_durable(conn, cursor)
    return cursor


def new_purchase_signals(db: Database, since: PurchaseCursor) -> PurchaseBatch:
    """Signals committed since the cursor's snapshot, and the cursor to continue from."""
    with db.connect() as conn:
        conn.set_session(isolation_level="REPEATABLE READ")
        with conn.cursor() as cur:
            # The first statement fixes the snapshot; both run in it.
            until = _snapshot_cursor(cur)
            cur.execute(
                "SELECT count(*), min(id), max(id) FROM purchase_signals "
                "WHERE ingest_xid >= %s::text::xid8 "
                "OR ingest_xid = ANY(%s::text[]::xid8[])",
                (str(since.xid), [str(x) for x in since.pending]),
            )
            count, first_id, last_id = cur.fetchone()
        conn.commit()
        _make_durable(conn, until)
    return PurchaseBatch(int(count), first_id, last_id, since, until)


def open_transactions(db: Database, limit: int = 3) -> tuple[int, list[OpenTransaction]]:
    """How many transactions on the server hold an xid and have not ended (any of them
    may still add signals), and the oldest `limit` of them."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            """
            WITH open AS (
                SELECT pid, state, xact_start AS since, datname,
                       nullif(application_name, '') AS application, NULL AS gid
                FROM pg_stat_activity
                WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
                UNION ALL
                SELECT NULL, 'prepared', prepared, database, NULL, gid FROM pg_prepared_xacts
            )
            SELECT pid, state, extract(epoch FROM now() - since)::float8, datname,
                   application, gid, count(*) OVER ()
            FROM open ORDER BY since NULLS LAST LIMIT %s
            """,
            (limit,),
        )
        rows = cur.fetchall()
    total = int(rows[0][-1]) if rows else 0
    return total, [OpenTransaction(*row[:-1]) for row in rows]


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
