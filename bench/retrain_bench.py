"""The whole retrain, breach to promoted champion, through the in-process Dagster graph.

Each videos database gets a stale champion before the first repetition: a model trained
on videos from before the drift, registered and promoted through the registry, whose
predictions for the last 10 days are the legacy model's (copied under its version; like
it, it knows only the world before the drift). Its 7-day MAE breaches the threshold, so
`run_check_in_process` (the whole graph: accuracy, training data, decision, training,
hold-out comparison, promotion, report, asset checks) retrains and promotes. Before each
repetition the stale champion is rolled back to, so every repetition is the same breach.

Every repetition runs in a fresh process: seconds and peak memory growth are its own.
Cost per million videos at each size shows whether it grows linearly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import dagster as dg

from bench.champions import register_small_champion
from bench.databases import WORLD_END, vacuum_analyze
from bench.fresh_process import Task
from bench.harness import BenchError, Stats, in_fresh_process, interleaved, stats_of
from bench.world_data import world_spec
from ctr_assets.db.connection import Database
from ctr_assets.models.registry import ModelRegistry
from ctr_assets.orchestration.run_check import CheckRun, run_check_in_process
from ctr_assets.simulation.populate import LEGACY_MODEL_VERSION


def install_stale_champion(db: Database, models: Path, videos: int) -> str:
    """Resets the product's tables and makes a pre-drift model the breaching champion."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE champion_history, model_versions, retrain_decisions")
        cur.execute(
            "DELETE FROM prediction_records WHERE model_version <> %s", (LEGACY_MODEL_VERSION,)
        )
    shutil.rmtree(models, ignore_errors=True)
    spec = world_spec(videos)
    drift_start = spec.day_start(spec.drift_day or 0)
    version = register_small_champion(
        db, models, drift_start, "a champion trained before the drift"
    )
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO prediction_records (video_id, model_version, predicted_ctr,
                actual_ctr, actual_impressions, predicted_roas, actual_roas,
                predicted_at, resolved_at)
            SELECT video_id, %s, predicted_ctr, actual_ctr, actual_impressions,
                   predicted_roas, actual_roas, predicted_at, resolved_at
            FROM prediction_records WHERE model_version = %s
            """,
            (version, LEGACY_MODEL_VERSION),
        )
    vacuum_analyze(db, "prediction_records")
    return version


def restore_champion(db: Database, models: Path, stale: str) -> None:
    registry = ModelRegistry(db, models)
    champion = registry.champion()
    if champion is None or champion.version != stale:
        registry.roll_back(stale, "bench: the next repetition starts from the stale champion")


@contextmanager
def whole_retrain(url: str, model_dir: str, as_of: str) -> Iterator[Task]:
    """Fresh-process task: one `run_check_in_process` that must end in a promotion."""
    with dg.instance_for_test() as instance:

        def run() -> CheckRun:
            return run_check_in_process(
                instance,
                Database(url),
                model_dir=model_dir,
                as_of=datetime.fromisoformat(as_of),
                log_level="WARNING",
            )

        def describe(check: CheckRun) -> dict:
            record = check.record or {}
            # `mae_within_threshold` (a warning) fails by design here: the champion breaches.
            promotion_checked = check.checks.get("challenger_beats_champion")
            if not check.success or record.get("status") != "retrained" or not promotion_checked:
                raise BenchError(
                    f"run {check.run_id} did not promote: success={check.success}, "
                    f"status={record.get('status')}, reason={record.get('reason')}, "
                    f"asset checks {check.checks}"
                )
            return {
                "training_rows": record["training_rows"],
                "holdout_rows": record["holdout_rows"],
                "training_seconds": record["training_seconds"],
                "mae_before": record["mae_before"],
                "mae_after": record["mae_after"],
                "asset_checks": check.checks,
            }

        yield Task(run=run, describe=describe)


def run_retrain_bench(databases: dict[int, Database], models: dict[int, Path], repeats: int):
    stale = {
        videos: install_stale_champion(db, models[videos], videos)
        for videos, db in databases.items()
    }

    def case(videos: int):
        return lambda: in_fresh_process(
            "bench.retrain_bench:whole_retrain",
            url=databases[videos].url,
            model_dir=str(models[videos]),
            as_of=WORLD_END.isoformat(),
        )

    def before_each(name: str) -> None:
        videos = int(name)
        restore_champion(databases[videos], models[videos], stale[videos])

    samples = interleaved({str(v): case(v) for v in databases}, repeats, before_each)
    sizes = {}
    for videos in databases:
        runs = samples[str(videos)]
        seconds = stats_of(runs, "seconds")
        sizes[str(videos)] = {
            "videos": videos,
            "frame_rows": runs[0]["training_rows"] + runs[0]["holdout_rows"],
            "seconds": seconds.as_dict(),
            "peak_rss_bytes": stats_of(runs, "peak_rss_bytes").as_dict(),
            "training_seconds": stats_of(runs, "training_seconds").as_dict(),
            "seconds_per_million_videos": seconds.median / (videos / 1e6),
            "mae_before": runs[0]["mae_before"],
            "mae_after": runs[0]["mae_after"],
            "asset_checks": runs[0]["asset_checks"],
        }
    return {
        "path": (
            "run_check_in_process (whole graph) on a database whose champion is stale "
            "(trained before the drift, 7-day MAE over the threshold): retrain and promote"
        ),
        "sizes": sizes,
        "samples": samples,
    }


def table_rows(result: dict) -> list[list[str]]:
    lines = []
    for figures in result["sizes"].values():
        s = Stats(**figures["seconds"])
        lines.append(
            [
                f"{figures['videos']:,} videos / {figures['frame_rows']:,} rows",
                f"{s.median:.1f}",
                f"{s.min:.1f}",
                f"{s.max:.1f}",
                f"{figures['training_seconds']['median']:.1f}",
                f"{figures['seconds_per_million_videos']:.1f}",
                f"{figures['peak_rss_bytes']['median'] / 2**20:,.0f} MiB",
            ]
        )
    return lines


def figures(result: dict) -> dict[str, float]:
    found = {}
    for size, data in result["sizes"].items():
        for stat in ("median", "min", "max"):
            found[f"retrain/{size}/seconds/{stat}"] = data["seconds"][stat]
        found[f"retrain/{size}/peak_rss_bytes"] = data["peak_rss_bytes"]["median"]
        found[f"retrain/{size}/seconds_per_million_videos"] = data["seconds_per_million_videos"]
    return found
