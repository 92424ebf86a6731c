"""PostgreSQL restarted (and crashed) under the loop, on a private server of this module.

Each fault is timed deterministically: a connection of the test holds the lock the product
is about to need (the table the purchase tick records its horizon in, after counting; the
table the accuracy query reads; the champion's advisory lock), the test waits until
PostgreSQL shows the product's session waiting on it, and only then stops the server
(pg_ctl's fast shutdown ends every session).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import pytest
from dagster._core.scheduler.instigation import TickStatus

from ctr_assets.db.connection import Database
from ctr_assets.db.purchases import PurchaseCursor
from ctr_assets.models.registry import _CHAMPION_LOCK, ModelRegistry
from ctr_assets.orchestration.run_check import run_check_in_process
from ctr_assets_tests.faults.daemon_ticks import (
    daemon_workspace,
    error_text,
    purchase_sensor,
    stored_cursor,
    tick_once,
)
from ctr_assets_tests.faults.private_postgres import PrivatePostgres, private_postgres
from ctr_assets_tests.faults.purchase_ticks import insert_signal, tick
from ctr_assets_tests.scenarios import make_scenario, with_champion

# What libpq says when the server ends a session under it (which of the two depends on
# whether the shutdown message arrives before the socket closes).
SERVER_WENT_AWAY = re.compile(
    "terminating connection due to administrator command|server closed the connection"
)


@pytest.fixture(scope="module")
def server() -> Iterator[PrivatePostgres]:
    # WAL reaches the disk only when a commit asks for it: no background writer flushing
    # it on its own schedule, so what a crash loses is decided by the test, not by timing.
    settings = {"wal_writer_delay": "10000ms", "bgwriter_lru_maxpages": "0", "autovacuum": "off"}
    with private_postgres(settings) as running:
        yield running


@pytest.fixture
def db(server: PrivatePostgres) -> Iterator[Database]:
    database = server.create_database()
    yield database
    if not server.running:  # a test that failed half-way leaves the server as it was
        server.start()


class Background:
    """Runs `action` on a thread; keeps its result or its exception."""

    def __init__(self, action: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = action()
            except BaseException as error:
                self.error = error

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self, timeout: float = 300) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the product never returned after the restart"


def _wait_for_lock_wait(db: Database, kind: str, timeout: float = 50) -> None:
    """Until a session waits on a lock of `kind` (a table of `db`, or 'advisory')."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.closing(psycopg2.connect(db.url)) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation "
                "WHERE NOT l.granted AND (l.locktype = %s OR c.relname = %s)",
                (kind, kind),
            )
            if cur.fetchone()[0]:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing waited on {kind} within {timeout} s")


def _holding(db: Database, statement: str) -> psycopg2.extensions.connection:
    """A connection inside a transaction that has run `statement` (and holds its lock)."""
    conn = psycopg2.connect(db.url, application_name="fault injector")
    with conn.cursor() as cur:
        cur.execute(statement)
    return conn


def _write_with_retries(db: Database, transaction_id: str, failures: list[str]) -> None:
    """A writer that retries through the outage, as the purchase service would."""
    while True:
        try:
            with contextlib.closing(psycopg2.connect(db.url, connect_timeout=2)) as conn:
                insert_signal(conn, transaction_id)
                conn.commit()
                return
        except psycopg2.OperationalError as error:
            failures.append(str(error).splitlines()[0])
            time.sleep(0.1)


def test_a_purchase_tick_cut_off_by_a_restart_fails_cleanly_and_nothing_is_lost(
    server: PrivatePostgres, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("CTR_PURCHASE_SENSOR_INTERVAL_SECONDS", "1")
    with (
        dg.instance_for_test() as instance,  # runs wait in the queue: the ticks are the test
        daemon_workspace(instance) as workspace,
    ):
        sensor = purchase_sensor(workspace)
        first = tick_once(workspace, instance)
        assert first.status == TickStatus.SKIPPED
        cursor_before = stored_cursor(instance, sensor)
        assert cursor_before is not None

        with psycopg2.connect(db.url) as conn:  # committed before the restart, not yet counted
            for n in range(3):
                insert_signal(conn, f"before-{n}")
        cut_off = psycopg2.connect(db.url)  # open across the restart: aborted by it
        insert_signal(cut_off, "cut-off")

        # The tick counts, then waits to record its horizon: the server stops right there.
        blocker = _holding(db, "LOCK TABLE purchase_sensor_ticks IN ACCESS EXCLUSIVE MODE")
        running_tick = Background(lambda: tick_once(workspace, instance))
        _wait_for_lock_wait(db, "purchase_sensor_ticks")
        server.stop("fast")

        failures: list[str] = []
        writers = [
            Background(lambda n=n: _write_with_retries(db, f"outage-{n}", failures))
            for n in range(4)
        ]
        running_tick.join()
        failed = running_tick.result
        assert failed.status == TickStatus.FAILURE
        assert "the application database did not answer" in error_text(failed)
        assert "the purchase cursor stays where it was" in error_text(failed)
        assert stored_cursor(instance, sensor) == cursor_before
        # A tick while the server is down fails the same way, and moves nothing either.
        down = tick_once(workspace, instance)
        assert down.status == TickStatus.FAILURE
        assert "Connection refused" in error_text(down)
        assert stored_cursor(instance, sensor) == cursor_before

        time.sleep(1)
        server.start()
        for writer in writers:
            writer.join()
        assert failures, "the writers never met the outage"
        with contextlib.suppress(psycopg2.Error):
            blocker.close()
            cut_off.close()

        after = tick_once(workspace, instance)
        assert after.status == TickStatus.SUCCESS, after.error
        (run_id,) = after.run_ids
        run = instance.get_run_by_id(run_id)
        # 3 committed before the restart + 4 written through the outage; the cut-off
        # transaction was aborted by the restart and never counted.
        assert run.tags["ctr_assets/purchases"] == "7"
        instance.report_run_canceled(run)  # the check "ran": the sensor goes on
        quiet = tick_once(workspace, instance)
        assert quiet.status == TickStatus.SKIPPED
        assert "no new purchase signals" in quiet.skip_reason
        print(f"\n[restart under a purchase tick] {len(failures)} failed writes, 7 counted after")


def _registered_champion(db: Database, model_dir: Path) -> str:
    from datetime import UTC, datetime

    from ctr_assets.ml.evaluation import score_on_holdout
    from ctr_assets.ml.training import TrainingParams, train_ctr_model
    from ctr_assets_tests.ml.synthetic import synthetic_training_frame

    frame = synthetic_training_frame(rows=400, seed=0)
    trained = train_ctr_model(frame, TrainingParams(num_boost_round=5))
    registry = ModelRegistry(db, model_dir)
    model = registry.register(
        trained, score_on_holdout(trained.booster, frame), {}, datetime.now(UTC)
    )
    registry.promote(model.version, None, "first model")
    return model.version


def _step_failures(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Step key -> its error, with every cause under it."""
    found = {}
    for event in instance.all_logs(run_id):
        if event.dagster_event and event.dagster_event.event_type_value == "STEP_FAILURE":
            parts, error = [], event.dagster_event.step_failure_data.error
            while error is not None:
                parts.append(error.message)
                error = error.cause or error.context
            found[event.dagster_event.step_key] = "\n".join(parts)
    return found


def test_a_restart_during_the_accuracy_query_fails_the_run_and_the_next_check_works(
    server: PrivatePostgres, db: Database, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    champion = _registered_champion(db, models)
    with dg.instance_for_test() as instance:
        blocker = _holding(db, "LOCK TABLE prediction_records IN ACCESS EXCLUSIVE MODE")
        check = Background(
            lambda: run_check_in_process(instance, db, model_dir=str(models), log_level="ERROR")
        )
        _wait_for_lock_wait(db, "prediction_records")
        started = time.monotonic()
        server.stop("fast")
        check.join()  # the run fails while the server is down
        server.start()
        restart_seconds = time.monotonic() - started
        with contextlib.suppress(psycopg2.Error):
            blocker.close()

        (run,) = instance.get_runs(limit=1)
        assert run.status == dg.DagsterRunStatus.FAILURE
        failures = _step_failures(instance, run.run_id)
        assert SERVER_WENT_AWAY.search(failures["prediction_accuracy"])
        assert ModelRegistry(db, models).champion().version == champion

        after = run_check_in_process(instance, db, model_dir=str(models), log_level="ERROR")
        assert after.success
        # Nothing resolved to judge the champion on: it stays, and the check says why.
        assert after.record["status"] in {"no_retrain_needed", "insufficient_data"}
        assert after.record["champion_after"] == champion
        print(f"\n[restart under the accuracy query] down and up again in {restart_seconds:.2f} s")


def test_a_restart_during_a_promotion_keeps_the_old_champion_whole(
    server: PrivatePostgres, db: Database, tmp_path: Path
) -> None:
    with dg.instance_for_test() as instance:
        scenario = with_champion(make_scenario(db, instance, tmp_path, 9), 6, 16)
        old = scenario.registry.champion()
        # The promotion waits for the champion's lock; the server stops under it and
        # comes back only after the run has given up.
        blocker = psycopg2.connect(db.url)
        blocker.autocommit = True
        with blocker.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_CHAMPION_LOCK,))
        check = Background(lambda: scenario.check(log_level="ERROR"))
        _wait_for_lock_wait(db, "advisory")
        server.stop("fast")
        check.join()
        server.start()
        blocker.close()

        (run,) = instance.get_runs(limit=1)
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert SERVER_WENT_AWAY.search(_step_failures(instance, run.run_id)["retrain_check"])
        registry = ModelRegistry(db, scenario.model_dir)
        assert registry.champion() == old
        assert [change.version for change in registry.history()] == [old.version]
        # The challenger was registered whole before the promotion: a file that passes its
        # checksum, never champion. The old champion's file is whole too.
        (challenger,) = [m for m in registry.versions() if m.version != old.version]
        for model in (old, challenger):
            digest = hashlib.sha256(Path(model.file_path).read_bytes()).hexdigest()
            assert digest == model.sha256

        retried = scenario.check(log_level="ERROR")
        assert retried.success
        assert retried.record["status"] == "retrained"
        assert retried.record["champion_before"] == old.version
        assert registry.champion().version == retried.record["champion_after"]


def test_a_crash_cannot_hand_out_an_xid_below_the_purchase_cursor(
    server: PrivatePostgres, db: Database
) -> None:
    with dg.instance_for_test() as instance:
        cursor = tick(instance, db, None).cursor
        aborted = psycopg2.connect(db.url)
        insert_signal(aborted, "tx-aborted")
        with aborted.cursor() as cur:
            cur.execute("SELECT pg_current_xact_id()::text")
            aborted_xid = int(cur.fetchone()[0])
        aborted.rollback()  # its abort record waits in the WAL buffers
        aborted.close()
        passed = tick(instance, db, cursor)
        assert passed.counted == 0
        assert PurchaseCursor.from_json(passed.cursor).xid > aborted_xid

        server.kill9()  # every process of the server, at once
        server.start()  # crash recovery
        with psycopg2.connect(db.url) as conn:
            insert_signal(conn, "tx-after-crash")
            with conn.cursor() as cur:
                cur.execute("SELECT pg_current_xact_id()::text")
                new_xid = int(cur.fetchone()[0])
        # Had the tick not flushed the WAL, the crash would have handed out the aborted
        # xid again, below the cursor, and this signal would never be counted.
        assert new_xid > aborted_xid
        assert tick(instance, db, passed.cursor).counted == 1
