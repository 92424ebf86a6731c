"""Sensor ticks, and the SQL under them, on a small and a large signals database.

Both sensors are evaluated through Dagster: `build_sensor_context(instance=, cursor=,
resources=)` and a call of the sensor definition, as the daemon would.

- `ctr_accuracy_sensor`: its instance holds one `prediction_accuracy` materialization,
  made by `run_check_in_process(selection=["prediction_accuracy", "real_training_data"])`
  on that database. The champion breaches the threshold, so every timed tick walks the
  whole decision (three materialization look-ups, two run queries) and returns the
  retrain `RunRequest`. It reads only Dagster's storage, not the application tables.
- `purchase_signals_sensor`: a handful of new signals is committed before each tick
  (untimed), so each tick takes its snapshot, counts the new rows over the `ingest_xid`
  index (from the horizon on, plus the pending xids), records its horizon and moves its
  cursor.

The SQL underneath is timed alone too: `new_purchase_signals` and `measure_accuracy` over
a 7-day window, with the plans PostgreSQL chose (EXPLAIN ANALYZE of the product's own
statements, captured as they run).

Targets: a tick under 50 ms; the large database's tick within 1.5x of the small one's.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg2
import psycopg2.extensions

from bench.champions import champion_version
from bench.databases import WORLD_END
from bench.harness import Stats, interleaved, stats_of, timed
from bench.reference.accuracy_two_pass import measure_accuracy as two_pass_accuracy
from bench.report import target
from ctr_assets.data.accuracy import measure_accuracy
from ctr_assets.db.connection import Database
from ctr_assets.db.purchases import PurchaseCursor, first_purchase_cursor, new_purchase_signals
from ctr_assets.orchestration.automation_settings import AutomationSettings
from ctr_assets.orchestration.resources import CtrDatabase, RetrainSettings
from ctr_assets.orchestration.run_check import run_check_in_process
from ctr_assets.orchestration.sensors import build_accuracy_sensor, build_purchase_sensor

TICK_TARGET_S = 0.050
GROWTH_TARGET = 1.5
ACCURACY_TARGET_S = 0.5  # the one-pass accuracy query at 10M prediction rows
TWO_PASS = "measure_accuracy before (two passes, join with all videos) 7 days"
NEW_SIGNALS_PER_TICK = 5
LOOKBACK_DAYS = 7


def add_purchase_signals(db: Database, n: int = NEW_SIGNALS_PER_TICK) -> None:
    """`n` new signals in one committed transaction, as the purchase service writes them."""
    with db.connect() as conn, conn.cursor() as cur:
        for _ in range(n):
            cur.execute(
                "INSERT INTO purchase_signals (transaction_id, video_id, amount, currency, "
                "occurred_at) VALUES (%s, 'gv1', 12.5, 'USD', now())",
                (f"bench-{uuid.uuid4().hex}",),
            )


@dataclass
class SensorSubject:
    """One signals database with its Dagster instance and sensor cursors."""

    label: str
    db: Database
    instance: dg.DagsterInstance
    purchase_cursor: str | None = None
    purchase_signals_seen: int = 0
    ticks_with_new_signals: int = 0

    def tick_accuracy(self) -> None:
        context = dg.build_sensor_context(
            instance=self.instance, resources={"retrain_settings": RetrainSettings()}
        )
        result = ACCURACY_SENSOR(context)
        if not isinstance(result, dg.RunRequest):
            raise RuntimeError(f"{self.label}: expected a retrain request, got {result}")

    def tick_purchases(self) -> None:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.purchase_cursor,
            resources={"database": CtrDatabase(url=self.db.url)},
        )
        result = PURCHASE_SENSOR(context)
        self.purchase_cursor = context.cursor
        if isinstance(result, dg.RunRequest):
            self.purchase_signals_seen += int(result.tags["ctr_assets/purchases"])
            self.ticks_with_new_signals += 1


ACCURACY_SENSOR = build_accuracy_sensor(AutomationSettings())
PURCHASE_SENSOR = build_purchase_sensor(AutomationSettings())


def _subject(stack: ExitStack, label: str, db: Database, model_dir: Path) -> SensorSubject:
    instance = stack.enter_context(dg.instance_for_test())
    refreshed = run_check_in_process(
        instance,
        db,
        model_dir=str(model_dir),
        as_of=WORLD_END,
        selection=["prediction_accuracy", "real_training_data"],
        log_level="WARNING",
    )
    if not refreshed.success:
        raise RuntimeError(f"{label}: the accuracy refresh run {refreshed.run_id} failed")
    subject = SensorSubject(label, db, instance)
    subject.tick_accuracy()  # warm-up: imports, first storage queries
    subject.tick_purchases()  # the first tick only sets the cursor
    return subject


_PLANS: list[dict] = []
_INDEX_USE = re.compile(r"(?:Index Scan using|Index Only Scan using|Bitmap Index Scan on) (\w+)")


class _ExplainingCursor(psycopg2.extensions.cursor):
    """Runs EXPLAIN (ANALYZE, BUFFERS) of each SELECT over a signal table, then the SELECT."""

    def execute(self, query, vars=None):
        if re.match(r"\s*SELECT\b.*\bFROM\s+(prediction_records|purchase_signals)", query, re.S):
            super().execute("EXPLAIN (ANALYZE, BUFFERS) " + query, vars)
            plan = "\n".join(row[0] for row in self.fetchall())
            _PLANS.append({"sql": " ".join(query.split()), "plan": plan})
        return super().execute(query, vars)


class ExplainingDatabase(Database):
    """The same database; every product query over the signal tables leaves its plan."""

    @contextmanager
    def connect(self) -> Iterator[psycopg2.extensions.connection]:
        conn = psycopg2.connect(self.url, cursor_factory=_ExplainingCursor)
        try:
            with conn:
                yield conn
        finally:
            conn.close()


def explain_product_queries(db: Database, champion: str, since: PurchaseCursor) -> list[dict]:
    _PLANS.clear()
    explaining = ExplainingDatabase(db.url)
    add_purchase_signals(db)
    new_purchase_signals(explaining, since)
    measure_accuracy(explaining, champion, WORLD_END, LOOKBACK_DAYS)
    plans = list(_PLANS)
    for entry in plans:
        entry["indexes"] = sorted(set(_INDEX_USE.findall(entry["plan"])))
        entry["seq_scans"] = sorted(set(re.findall(r"Seq Scan on (\w+)", entry["plan"])))
        times = re.findall(r"Execution Time: ([\d.]+) ms", entry["plan"])
        entry["execution_ms"] = float(times[-1]) if times else None
    return plans


def run_sensor_bench(
    databases: dict[str, Database], ticks: int, sql_repeats: int, model_root: Path
) -> dict:
    """`databases`: label -> signals database, small one first."""
    with ExitStack() as stack:
        subjects = {
            label: _subject(stack, label, db, model_root / label) for label, db in databases.items()
        }
        champions = {label: champion_version(db) for label, db in databases.items()}
        before = {label: s.purchase_signals_seen for label, s in subjects.items()}

        cases = {}
        for label, subject in subjects.items():
            cases[f"accuracy sensor @ {label}"] = lambda s=subject: timed(s.tick_accuracy)
            cases[f"purchase sensor @ {label}"] = lambda s=subject: timed(s.tick_purchases)

        def before_tick(case: str) -> None:
            if case.startswith("purchase"):
                add_purchase_signals(subjects[case.split(" @ ")[1]].db)

        tick_samples = interleaved(cases, ticks, before_each=before_tick)

        cursors = {label: first_purchase_cursor(db) for label, db in databases.items()}
        sql_cases = {}
        for label, db in databases.items():
            sql_cases[f"new_purchase_signals @ {label}"] = lambda db=db, label=label: timed(
                lambda: new_purchase_signals(db, cursors[label])
            )
            sql_cases[f"measure_accuracy 7 days @ {label}"] = lambda db=db, label=label: timed(
                lambda: measure_accuracy(db, champions[label], WORLD_END, LOOKBACK_DAYS)
            )
            # The reference: the accuracy as measured before the one-pass query (two passes
            # over the window and a join with all of `videos`), frozen in bench/reference.
            sql_cases[f"{TWO_PASS} @ {label}"] = lambda db=db, label=label: timed(
                lambda: two_pass_accuracy(db, champions[label], WORLD_END, LOOKBACK_DAYS)
            )

        def before_sql(case: str) -> None:
            if case.startswith("new_purchase"):
                add_purchase_signals(databases[case.split(" @ ")[1]])

        sql_samples = interleaved(sql_cases, sql_repeats, before_each=before_sql)
        window = {
            label: measure_accuracy(db, champions[label], WORLD_END, LOOKBACK_DAYS).n_samples
            for label, db in databases.items()
        }
        plans = {
            label: explain_product_queries(db, champions[label], cursors[label])
            for label, db in databases.items()
        }
        seen = {
            label: {
                "ticks_with_new_signals": s.ticks_with_new_signals,
                "signals_counted": s.purchase_signals_seen - before[label],
            }
            for label, s in subjects.items()
        }

    small, large = list(databases)
    ticks_stats = {case: stats_of(samples, "seconds") for case, samples in tick_samples.items()}
    sql_stats = {case: stats_of(samples, "seconds") for case, samples in sql_samples.items()}
    growth = {
        sensor: ticks_stats[f"{sensor} sensor @ {large}"].median
        / ticks_stats[f"{sensor} sensor @ {small}"].median
        for sensor in ("accuracy", "purchase")
    }
    return {
        "databases": list(databases),
        "ticks": {case: s.as_dict() for case, s in ticks_stats.items()},
        "tick_growth_large_over_small": growth,
        "sql": {case: s.as_dict() for case, s in sql_stats.items()},
        "accuracy_window_rows": window,
        "purchase_ticks": seen,
        "plans": plans,
        "accuracy_sensor_path": (
            "instance with one prediction_accuracy materialization (breaching champion): "
            "every tick evaluates the whole decision and returns the retrain RunRequest"
        ),
        "new_signals_per_tick": NEW_SIGNALS_PER_TICK,
        "window": {"as_of": WORLD_END.isoformat(), "days": LOOKBACK_DAYS},
        "samples": {**tick_samples, **sql_samples},
    }


def targets(result: dict) -> list[dict]:
    small, large = result["databases"]
    accuracy = result["sql"][f"measure_accuracy 7 days @ {large}"]["median"]
    return [
        target(
            f"measure_accuracy 7 days @ {large}: under {ACCURACY_TARGET_S} s",
            accuracy,
            ACCURACY_TARGET_S,
        ),
        *(
            target(
                f"{case}: median tick under {TICK_TARGET_S * 1000:.0f} ms",
                stats["median"],
                TICK_TARGET_S,
            )
            for case, stats in result["ticks"].items()
        ),
        *(
            target(
                f"{sensor} sensor: tick @ {large} within {GROWTH_TARGET}x of @ {small}",
                growth,
                GROWTH_TARGET,
            )
            for sensor, growth in result["tick_growth_large_over_small"].items()
        ),
    ]


def table_rows(result: dict) -> list[list[str]]:
    lines = []
    for group in ("ticks", "sql"):
        for case, figures in result[group].items():
            s = Stats(**figures)
            lines.append(
                [case, f"{s.median * 1000:.1f}", f"{s.min * 1000:.1f}", f"{s.max * 1000:.1f}"]
            )
    return lines


def plan_lines(result: dict) -> list[str]:
    """What the ticks found, and which indexes the product's statements used."""
    lines = []
    for label, seen in result["purchase_ticks"].items():
        lines.append(
            f"purchase sensor @ {label}: {seen['ticks_with_new_signals']} ticks requested a "
            f"check, counting {seen['signals_counted']} new signals"
        )
    for label, rows in result["accuracy_window_rows"].items():
        lines.append(f"measure_accuracy @ {label}: {rows:,} resolved predictions in the window")
    for label, plans in result["plans"].items():
        for entry in plans:
            what = entry["sql"][:70]
            used = ", ".join(entry["indexes"]) or "no index"
            seq = f"; seq scan on {', '.join(entry['seq_scans'])}" if entry["seq_scans"] else ""
            lines.append(f"@ {label}: {what}... -> {used}{seq} ({entry['execution_ms']} ms)")
    return lines


def figures(result: dict) -> dict[str, float]:
    found = {}
    for group in ("ticks", "sql"):
        for case, stats in result[group].items():
            for stat in ("median", "min", "max"):
                found[f"sensors/{case}/seconds/{stat}"] = stats[stat]
    for sensor, growth in result["tick_growth_large_over_small"].items():
        found[f"sensors/{sensor}/tick_growth"] = growth
    for label, rows in result["accuracy_window_rows"].items():
        found[f"sensors/accuracy_window_rows @ {label}"] = rows
    return found
