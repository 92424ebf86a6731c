"""Fills a database with the demo world as it stands at the end of its last day."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pyarrow as pa

from ctr_assets.db import writes
from ctr_assets.db.connection import Database
from ctr_assets.simulation.world import (
    DemoWorld,
    Launch,
    WorldSpec,
    outcomes_table,
    predictions_table,
    purchases_table,
    videos_table,
)

LEGACY_MODEL_VERSION = "legacy-cron"


@dataclass(frozen=True)
class PopulateSummary:
    videos: int
    predictions_added: int
    predictions_resolved: int
    purchases_added: int
    planted_bad_rows: dict[str, int]


def delivered_days(spec: WorldSpec, launch: Launch, as_of_day: int) -> int:
    """Days of delivery a launch has had by the end of `as_of_day`."""
    return min(spec.run_days, as_of_day - launch.day + 1)


def populate(db: Database, spec: WorldSpec) -> PopulateSummary:
    """Writes every day of the world; safe to run again (nothing is duplicated).

    Predictions come from the model that served before this project (`legacy-cron`),
    so the accuracy history exists before the first check runs.
    """
    world = DemoWorld(spec)
    last_day = spec.days - 1
    videos, predictions, outcomes, purchases = [], [], [], []
    planted: Counter[str] = Counter()
    for day in range(spec.days):
        launch = world.launch(day)
        planted.update(kind for kind in launch.bad_kind if kind)
        videos.append(videos_table(launch, delivered_days(spec, launch, last_day), spec.end))
        ctr = world.legacy_ctr(launch)
        predictions.append(
            predictions_table(launch, ctr, world.roas_forecast(launch, ctr), LEGACY_MODEL_VERSION)
        )
        if day + spec.resolve_after_days <= spec.days:
            outcomes.append(outcomes_table(launch, spec))
        purchases.extend(
            purchases_table(launch, spec, delivery_day)
            for delivery_day in range(delivered_days(spec, launch, last_day))
        )
    video_count = writes.upsert_videos(db, pa.concat_tables(videos))
    added = writes.insert_predictions(db, pa.concat_tables(predictions))
    resolved = writes.resolve_predictions(db, pa.concat_tables(outcomes)) if outcomes else 0
    purchases_added = writes.insert_purchases(db, pa.concat_tables(purchases))
    return PopulateSummary(
        videos=video_count,
        predictions_added=added,
        predictions_resolved=resolved,
        purchases_added=purchases_added,
        planted_bad_rows=dict(planted),
    )
