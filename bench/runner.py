"""Runs the chosen benchmarks at one scale: data, measurements, tables, JSON."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from bench import (
    load_bench,
    purchase_load_bench,
    report,
    retrain_bench,
    sensor_bench,
    training_bench,
)
from bench.databases import Log, Server, model_dir
from bench.scales import Scale
from bench.signal_data import signals_database
from bench.world_data import videos_database

BENCHMARKS = ("load", "sensors", "training", "retrain", "purchase_load")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _product_fingerprint() -> str:
    """SHA-256 over the product's Python sources: which code these figures belong to."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1] / "ctr_assets"
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _machine() -> dict:
    memory = Path("/proc/meminfo").read_text().split()[1]  # MemTotal, kB
    return {
        "cpus": os.cpu_count(),
        "memory_bytes": int(memory) * 1024,
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
        **{name: version(name) for name in ("xgboost", "pandas", "pyarrow", "dagster")},
        "adbc-driver-postgresql": version("adbc-driver-postgresql"),
        "product_sources_sha256": _product_fingerprint(),
    }


def prepare_databases(
    scale: Scale, server: Server, only: tuple[str, ...], regenerate: bool, log: Log
) -> None:
    """Generates (or checks) every database the chosen benchmarks need, and stops."""
    videos = set()
    if "load" in only:
        videos.update(scale.load_videos)
    if "training" in only:
        videos.add(scale.training_videos)
    if "retrain" in only:
        videos.update(scale.retrain_videos)
    for count in sorted(videos):
        videos_database(server, count, regenerate=regenerate, log=log)
    if "sensors" in only:
        for rows in scale.signal_rows:
            signals_database(server, rows, regenerate=regenerate, log=log)


def run_benchmarks(
    scale: Scale,
    server: Server,
    *,
    only: tuple[str, ...] = BENCHMARKS,
    regenerate: bool = False,
    json_path: Path | None = None,
    keep_databases: bool = True,
    log: Log = lambda line: print(line, file=sys.stderr, flush=True),
) -> dict:
    """Every benchmark in `only`; returns (and writes) the results."""
    started = time.perf_counter()
    results: dict = {
        "scale": scale.name,
        "started_at": datetime.now(UTC).isoformat(),
        "machine": _machine(),
        "benchmarks": {},
        "figures": {},
        "targets": [],
    }
    used: set[str] = set()

    def videos_db(videos: int):
        db = videos_database(server, videos, regenerate=regenerate and videos not in made, log=log)
        made.add(videos)
        used.add(f"{server.prefix}_videos_{videos}")
        return db

    made: set[int] = set()

    def record(name: str, result: dict, module) -> None:
        results["benchmarks"].setdefault(name, []).append(result)
        results["figures"].update(module.figures(result))
        if hasattr(module, "targets"):
            results["targets"].extend(module.targets(result))

    try:
        if "load" in only:
            for videos in scale.load_videos:
                log(f"load: {videos:,} videos, {scale.load_repeats} repetitions per method")
                result = load_bench.run_load_bench(videos_db(videos), videos, scale.load_repeats)
                record("load", result, load_bench)
                print(
                    report.table(
                        f"Training frame load, {videos:,} videos (seconds)",
                        ["data", "method", "median", "min", "max", "rows/s", "peak RSS", ""],
                        load_bench.table_rows(result),
                    ),
                    flush=True,
                )
        if "sensors" in only:
            databases = {}
            for rows in scale.signal_rows:
                databases[f"{rows:,} rows"] = signals_database(
                    server, rows, regenerate=regenerate, log=log
                )
                used.add(f"{server.prefix}_signals_{rows}")
            log(f"sensors: {scale.sensor_ticks} ticks each, SQL {scale.sql_repeats} times")
            result = sensor_bench.run_sensor_bench(
                databases,
                scale.sensor_ticks,
                scale.sql_repeats,
                model_dir(f"{server.prefix}_sensor_instances"),
            )
            record("sensors", result, sensor_bench)
            print(
                report.table(
                    "Sensor ticks and their SQL (milliseconds)",
                    ["case", "median", "min", "max"],
                    sensor_bench.table_rows(result),
                ),
                flush=True,
            )
            print("Work done, and plans (EXPLAIN ANALYZE of the product's statements):")
            print("\n".join("  " + line for line in sensor_bench.plan_lines(result)), flush=True)
        if "training" in only:
            videos = scale.training_videos
            log(f"training: {videos:,} videos, {scale.training_repeats} repetitions per variant")
            result = training_bench.run_training_bench(
                videos_db(videos), videos, scale.training_repeats
            )
            record("training", result, training_bench)
            print(
                report.table(
                    f"Training on {result['frame_rows']:,} rows (seconds)",
                    ["variant", "median", "min", "max", "rounds", "ratio"],
                    training_bench.table_rows(result),
                ),
                flush=True,
            )
        if "retrain" in only:
            log(f"retrain: {scale.retrain_videos}, {scale.retrain_repeats} repetitions each")
            databases = {videos: videos_db(videos) for videos in scale.retrain_videos}
            models = {
                videos: model_dir(f"{server.prefix}_videos_{videos}") / "retrain"
                for videos in databases
            }
            result = retrain_bench.run_retrain_bench(databases, models, scale.retrain_repeats)
            record("retrain", result, retrain_bench)
            print(
                report.table(
                    "Whole retrain, breach to promoted champion (seconds)",
                    ["data", "median", "min", "max", "training", "s per M videos", "peak RSS"],
                    retrain_bench.table_rows(result),
                ),
                flush=True,
            )
        if "purchase_load" in only:
            result = purchase_load_bench.run_purchase_load_bench(
                server, scale.purchase_load_signals, scale.purchase_load_daemon, log
            )
            record("purchase_load", result, purchase_load_bench)
            print(
                report.table(
                    f"Purchase signals under load ({result['committed']:,} committed, "
                    f"{result['writers']} writers)",
                    ["measurement", "figure", "detail"],
                    purchase_load_bench.table_rows(result),
                ),
                flush=True,
            )
    finally:
        if not keep_databases:
            for name in [*sorted(used), f"{server.prefix}_sensor_instances"]:
                server.drop(name)

    results["seconds"] = time.perf_counter() - started
    results["machine"]["load_average_at_end"] = os.getloadavg()
    if results["targets"]:
        print(report.targets_table(results["targets"]), flush=True)
        if not scale.targets_apply:
            print(
                f"({scale.name} scale: too small to judge; the targets are set at 1M+ rows, "
                "where fixed costs no longer dominate. Run --scale 1m or full.)",
                flush=True,
            )
    path = json_path or RESULTS_DIR / f"{scale.name}.json"
    report.write_json(results, path)
    log(f"wrote {path} ({results['seconds']:.0f} s in all)")
    return results
