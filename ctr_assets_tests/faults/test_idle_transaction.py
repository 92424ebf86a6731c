"""A session left idle in a transaction elsewhere on the server does not stall purchases.

The session holds a transaction id for the whole of each test (as a forgotten `psql` that
ran one UPDATE would), on another database of a private server (on the shared server it
would stall other people's tests). Writers commit out of order around it; every tick's
count is checked against exactly what committed since the tick before.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import psycopg2
import pytest

from ctr_assets.db.connection import Database
from ctr_assets.db.purchases import PurchaseCursor
from ctr_assets_tests.faults.private_postgres import PrivatePostgres, private_postgres
from ctr_assets_tests.faults.purchase_ticks import insert_signal, signal_count, tick


@pytest.fixture(scope="module")
def server() -> Iterator[PrivatePostgres]:
    with private_postgres({"max_prepared_transactions": "4"}) as running:
        yield running


@pytest.fixture
def db(server: PrivatePostgres) -> Database:
    return server.create_database()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@dataclass
class IdleSession:
    conn: psycopg2.extensions.connection
    pid: int
    xid: int


@pytest.fixture
def idle_session(server: PrivatePostgres) -> Iterator[IdleSession]:
    """A transaction holding an xid, idle on another database for the whole test."""
    conn = psycopg2.connect(server.url("postgres"), application_name="forgotten psql")
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid(), pg_current_xact_id()::text")
        pid, xid = cur.fetchone()
    yield IdleSession(conn, pid, int(xid))
    # Still open at the end: the whole test ran under it.
    with psycopg2.connect(server.url()) as check, check.cursor() as cur:
        cur.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,))
        assert cur.fetchone() == ("idle in transaction",)
    conn.rollback()
    conn.close()


@pytest.mark.parametrize(
    ("text", "cursor"),
    [
        ('{"xid": 812}', PurchaseCursor(812, ())),  # the format before pending xids
        ('{"xid": 812, "pending": []}', PurchaseCursor(812, ())),
        ('{"xid": 812, "pending": [799, 640]}', PurchaseCursor(812, (640, 799))),
    ],
)
def test_cursor_formats_are_read(text: str, cursor: PurchaseCursor) -> None:
    assert PurchaseCursor.from_json(text) == cursor
    assert PurchaseCursor.from_json(cursor.to_json()) == cursor


def test_signals_are_counted_while_a_session_idles_in_a_transaction(
    db: Database, instance: dg.DagsterInstance, idle_session: IdleSession
) -> None:
    first = tick(instance, db, None)
    assert "first tick" in first.words
    start = PurchaseCursor.from_json(first.cursor)
    # The idle transaction has not ended: it is pending, or at or above the horizon.
    assert idle_session.xid in start.pending or idle_session.xid >= start.xid

    with psycopg2.connect(db.url) as writer:
        ids = [insert_signal(writer, f"tx-{n}") for n in range(3)]
    counted = tick(instance, db, first.cursor)
    assert isinstance(counted.result, dg.RunRequest), counted.words
    assert counted.counted == 3
    assert counted.result.tags["ctr_assets/purchase_ids"] == f"{ids[0]}-{ids[-1]}"

    quiet = tick(instance, db, counted.cursor)
    assert isinstance(quiet.result, dg.SkipReason)
    # It names what may still add signals: the idle session, by pid, state and age.
    assert "no new purchase signals" in quiet.words
    assert f"pid {idle_session.pid} (idle in transaction for " in quiet.words
    assert "database postgres, application 'forgotten psql'" in quiet.words

    with psycopg2.connect(db.url) as writer:
        insert_signal(writer, "tx-later")
    assert tick(instance, db, quiet.cursor).counted == 1


def test_writers_committing_out_of_order_are_each_counted_once(
    db: Database, instance: dg.DagsterInstance, idle_session: IdleSession
) -> None:
    cursor = tick(instance, db, None).cursor
    writers = [psycopg2.connect(db.url, application_name=f"writer-{n}") for n in range(4)]
    try:
        # Ids are handed out in writer order; commits come in another order.
        rows = {0: ["a0", "a1"], 1: ["b0", "b1", "b2"], 2: ["c0"], 3: ["d0", "d1"]}
        for n, transaction_ids in rows.items():
            for transaction_id in transaction_ids:
                insert_signal(writers[n], transaction_id)
        with writers[2].cursor() as cur:  # a savepoint rolled back inside a committed one
            cur.execute("SAVEPOINT maybe")
            insert_signal(writers[2], "c-undone")
            cur.execute("ROLLBACK TO SAVEPOINT maybe")
            insert_signal(writers[2], "c1")
        with writers[1].cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            writer_1_pid = cur.fetchone()[0]

        writers[2].commit()
        step = tick(instance, db, cursor)
        assert step.counted == 2  # c0, c1: the lower ids of writers 0 and 1 do not hold it

        writers[0].commit()
        writers[3].rollback()  # aborted: never counted
        step = tick(instance, db, step.cursor)
        assert step.counted == 2  # a0, a1

        with psycopg2.connect(db.url) as again:  # a0 delivered twice: no new row
            assert insert_signal(again, "a0") is None
        step = tick(instance, db, step.cursor)
        assert step.counted == 0
        assert f"pid {writer_1_pid} (idle in transaction" in step.words
        assert f"pid {idle_session.pid}" in step.words

        writers[1].commit()
        step = tick(instance, db, step.cursor)
        assert step.counted == 3  # b0, b1, b2, committed last with the lowest ids but one
        assert tick(instance, db, step.cursor).counted == 0
    finally:
        for writer in writers:
            writer.close()
    assert signal_count(db) == 2 + 3 + 2  # everything committed was counted, once


def test_an_old_cursor_stalled_behind_the_session_resumes_and_counts_the_backlog(
    db: Database, instance: dg.DagsterInstance, idle_session: IdleSession
) -> None:
    # What the earlier sensor stored: the oldest running transaction, the idle one.
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        horizon = int(cur.fetchone()[0])
    assert horizon == idle_session.xid
    with psycopg2.connect(db.url) as writer:  # stalled behind it until now
        insert_signal(writer, "tx-stalled-1")
        insert_signal(writer, "tx-stalled-2")
    resumed = tick(instance, db, json.dumps({"xid": horizon}))
    assert resumed.counted == 2
    assert json.loads(resumed.cursor)["pending"] == [idle_session.xid]
    assert tick(instance, db, resumed.cursor).counted == 0


def test_a_prepared_transaction_is_named_and_counted_once_committed(
    db: Database, instance: dg.DagsterInstance
) -> None:
    cursor = tick(instance, db, None).cursor
    conn = psycopg2.connect(db.url)
    conn.autocommit = True  # BEGIN and PREPARE are ours to send
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            insert_signal(conn, "tx-two-phase")
            cur.execute("PREPARE TRANSACTION 'ctr-fault-prepared'")
        waiting = tick(instance, db, cursor)
        assert waiting.counted == 0
        assert "prepared transaction 'ctr-fault-prepared' (for " in waiting.words
        with conn.cursor() as cur:
            cur.execute("COMMIT PREPARED 'ctr-fault-prepared'")
        assert tick(instance, db, waiting.cursor).counted == 1
    finally:
        conn.close()
        with contextlib.closing(psycopg2.connect(db.url)) as cleanup:
            cleanup.autocommit = True
            with cleanup.cursor() as cur:
                cur.execute("SELECT gid FROM pg_prepared_xacts")
                for (gid,) in cur.fetchall():
                    cur.execute(f"ROLLBACK PREPARED '{gid}'")
