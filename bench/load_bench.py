"""Loading the training frame: the product's ADBC path against two references.

- `adbc` (measured): `load_training_frame`, ADBC binary COPY -> Arrow -> screened -> pandas.
- `copy_floor` (reference): psycopg2 `copy_expert` of `COPY (<training_query>) TO STDOUT
  (FORMAT binary)` into /dev/null: what the server and the wire cost, with no decoding.
- `read_sql` (reference): `pandas.read_sql` of the same query through SQLAlchemy and
  psycopg2: the raw frame only, no screening, no categoricals.

Every repetition of every method runs in a fresh process (`bench.fresh_process`), so its
peak memory is its own. Targets: ADBC within 1.4x of the floor; its peak memory growth
within 2.5x of the final frame (`frame.memory_usage(deep=True).sum()`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import psycopg2
import sqlalchemy

from bench.fresh_process import Task
from bench.harness import Stats, in_fresh_process, interleaved, stats_of
from bench.report import target
from ctr_assets.data.training_frame import RowSelection, load_training_frame, training_query
from ctr_assets.db.connection import Database

MIN_IMPRESSIONS = 100
FLOOR_TARGET = 1.4
MEMORY_TARGET = 2.5
METHODS = ("adbc", "copy_floor", "read_sql")


def _frame_bytes(frame: pd.DataFrame) -> int:
    return int(frame.memory_usage(deep=True).sum())


@contextmanager
def adbc_load(url: str) -> Iterator[Task]:
    db = Database(url)

    def describe(data) -> dict:
        return {
            "rows": data.rows_read,
            "frame_rows": len(data.frame),
            "frame_bytes": _frame_bytes(data.frame),
        }

    yield Task(
        run=lambda: load_training_frame(db, RowSelection(MIN_IMPRESSIONS)), describe=describe
    )


@contextmanager
def copy_floor(url: str) -> Iterator[Task]:
    sql = f"COPY ({training_query(RowSelection(MIN_IMPRESSIONS))}) TO STDOUT (FORMAT binary)"

    def run() -> int:
        conn = psycopg2.connect(url)
        try:
            with open(os.devnull, "wb") as sink, conn.cursor() as cur:
                cur.copy_expert(sql, sink)
                return cur.rowcount
        finally:
            conn.close()

    yield Task(run=run, describe=lambda rows: {"rows": rows})


@contextmanager
def read_sql(url: str) -> Iterator[Task]:
    engine = sqlalchemy.create_engine(Database(url).sqlalchemy_url)
    query = sqlalchemy.text(training_query(RowSelection(MIN_IMPRESSIONS)))

    def run() -> pd.DataFrame:
        with engine.connect() as conn, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pd.read_sql(query, conn)

    try:
        yield Task(
            run=run,
            describe=lambda frame: {"rows": len(frame), "frame_bytes": _frame_bytes(frame)},
        )
    finally:
        engine.dispose()


def run_load_bench(db: Database, videos: int, repeats: int) -> dict:
    """Each method `repeats` times, interleaved, each in a fresh process."""
    samples = interleaved(
        {
            method: lambda method=method: in_fresh_process(f"bench.load_bench:{method}", url=db.url)
            for method in ("adbc_load", "copy_floor", "read_sql")
        },
        repeats,
    )
    samples = {"adbc": samples["adbc_load"], **{m: samples[m] for m in METHODS[1:]}}
    rows = samples["adbc"][0]["rows"]
    if any(sample["rows"] != rows for runs in samples.values() for sample in runs):
        raise RuntimeError(f"the methods read different row counts: {samples}")
    seconds = {method: stats_of(samples[method], "seconds") for method in METHODS}
    adbc_peak = stats_of(samples["adbc"], "peak_rss_bytes")
    frame_bytes = samples["adbc"][0]["frame_bytes"]
    return {
        "videos": videos,
        "rows": rows,
        "frame_rows": samples["adbc"][0]["frame_rows"],
        "frame_bytes": frame_bytes,
        "methods": {
            method: {
                "seconds": seconds[method].as_dict(),
                "rows_per_second": rows / seconds[method].median,
                "peak_rss_bytes": stats_of(samples[method], "peak_rss_bytes").as_dict(),
            }
            for method in METHODS
        },
        "ratio_to_floor": seconds["adbc"].median / seconds["copy_floor"].median,
        "ratio_to_read_sql": seconds["adbc"].median / seconds["read_sql"].median,
        "peak_rss_over_frame": adbc_peak.median / frame_bytes,
        "samples": samples,
    }


def targets(result: dict) -> list[dict]:
    label = f"load {result['videos']:,} videos"
    return [
        target(
            f"{label}: ADBC within {FLOOR_TARGET}x of the COPY floor",
            result["ratio_to_floor"],
            FLOOR_TARGET,
        ),
        target(
            f"{label}: peak RSS within {MEMORY_TARGET}x of the frame",
            result["peak_rss_over_frame"],
            MEMORY_TARGET,
        ),
    ]


def table_rows(result: dict) -> list[list[str]]:
    """One line per method, for the printed table."""
    lines = []
    for method in METHODS:
        figures = result["methods"][method]
        s = Stats(**{k: v for k, v in figures["seconds"].items()})
        ratio = s.median / result["methods"]["adbc"]["seconds"]["median"]
        lines.append(
            [
                f"{result['videos']:,} videos / {result['rows']:,} rows",
                method,
                f"{s.median:.3f}",
                f"{s.min:.3f}",
                f"{s.max:.3f}",
                f"{figures['rows_per_second'] / 1e6:.2f} M/s",
                f"{figures['peak_rss_bytes']['median'] / 2**20:,.0f} MiB",
                f"adbc = {1 / ratio:.2f}x" if method != "adbc" else "",
            ]
        )
    return lines


def figures(result: dict) -> dict[str, float]:
    prefix = f"load/{result['videos']}"
    found = {
        f"{prefix}/ratio_to_floor": result["ratio_to_floor"],
        f"{prefix}/ratio_to_read_sql": result["ratio_to_read_sql"],
        f"{prefix}/peak_rss_over_frame": result["peak_rss_over_frame"],
        f"{prefix}/frame_bytes": result["frame_bytes"],
    }
    for method, data in result["methods"].items():
        for stat in ("median", "min", "max"):
            found[f"{prefix}/{method}/seconds/{stat}"] = data["seconds"][stat]
        found[f"{prefix}/{method}/rows_per_second"] = data["rows_per_second"]
        if method != "copy_floor":  # streams to /dev/null: it may need no memory at all
            found[f"{prefix}/{method}/peak_rss_bytes"] = data["peak_rss_bytes"]["median"]
    return found
