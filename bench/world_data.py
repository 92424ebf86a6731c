"""`<prefix>_videos_<n>`: the demo world with `n` videos over 50 days.

Written through the product's own writers (`ctr_assets.db.writes`: ADBC ingest into a
staging table, then one INSERT ... SELECT per day). The legacy model's predictions are
written for the last 10 days only, with their outcomes: that covers every accuracy window
a check as of the world's end reads; older ones would only add rows no query touches.
"""

from __future__ import annotations

from bench.databases import GENERATOR_VERSION, WORLD_END, Log, Server, ensure, vacuum_analyze
from ctr_assets.db import writes
from ctr_assets.db.connection import Database
from ctr_assets.simulation.populate import LEGACY_MODEL_VERSION, delivered_days
from ctr_assets.simulation.world import (
    DemoWorld,
    WorldSpec,
    outcomes_table,
    predictions_table,
    videos_table,
)

WORLD_DAYS = 50
DRIFT_DAYS_BEFORE_END = 15  # the drift is older than any accuracy window
PREDICTION_DAYS = 10


def world_spec(videos: int) -> WorldSpec:
    return WorldSpec(
        seed=42,
        days=WORLD_DAYS,
        videos=videos,
        drift_day=WORLD_DAYS - DRIFT_DAYS_BEFORE_END,
        end=WORLD_END,
    )


def videos_database(server: Server, videos: int, *, regenerate: bool, log: Log) -> Database:
    spec = world_spec(videos)
    manifest = {
        "kind": "videos",
        "generator": GENERATOR_VERSION,
        "spec": {k: str(v) for k, v in spec.__dict__.items()},
        "prediction_days": PREDICTION_DAYS,
    }
    return ensure(
        server,
        f"{server.prefix}_videos_{videos}",
        manifest,
        "SELECT count(*) FROM videos",
        videos,
        lambda db: write_world(db, spec),
        regenerate=regenerate,
        log=log,
    )


def write_world(db: Database, spec: WorldSpec) -> None:
    """Every video of the world as of its end, and the legacy model's recent predictions."""
    last_day = spec.days - 1
    for day in range(spec.days):
        world = DemoWorld(spec)  # a new one each day: the world caches every launch
        launch = world.launch(day)
        writes.upsert_videos(
            db, videos_table(launch, delivered_days(spec, launch, last_day), spec.end)
        )
        if day >= spec.days - PREDICTION_DAYS:
            ctr = world.legacy_ctr(launch)
            writes.insert_predictions(
                db,
                predictions_table(
                    launch, ctr, world.roas_forecast(launch, ctr), LEGACY_MODEL_VERSION
                ),
            )
            if day + spec.resolve_after_days <= spec.days:
                writes.resolve_predictions(db, outcomes_table(launch, spec))
    vacuum_analyze(db, "videos", "prediction_records")
