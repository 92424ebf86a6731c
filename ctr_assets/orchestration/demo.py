"""The closed loop over simulated days, headless: the product's own asset graph at work.

Each day: new videos launch and the champion (before the first one, the legacy model)
predicts their CTR through the predictor API; videos deliver, outcomes of earlier
predictions resolve, purchases arrive; then one retrain check runs through Dagster
(`prediction_accuracy`, `real_training_data`, `ctr_model`, `retrain_report`) as of the end
of that day.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa

from ctr_assets.db import writes
from ctr_assets.db.connection import Database
from ctr_assets.ml.gate import format_bounds
from ctr_assets.models.registry import ModelRegistry
from ctr_assets.orchestration.run_check import run_check_in_process
from ctr_assets.serving.predictor import CTRPredictor
from ctr_assets.simulation.populate import LEGACY_MODEL_VERSION, delivered_days
from ctr_assets.simulation.world import (
    DemoWorld,
    WorldSpec,
    outcomes_table,
    predictions_table,
    purchases_table,
    videos_table,
)


@dataclass(frozen=True)
class DemoDay:
    day: int
    as_of: datetime
    status: str
    mae: float | None
    n_samples: int | None
    champion: str | None
    reason: str
    run_success: bool
    mae_lower_bound: float | None = None  # the true MAE's confidence interval
    mae_upper_bound: float | None = None
    views: dict[str, str] | None = None  # each gate's verdict

    def line(self) -> str:
        if self.status == "history":
            return f"day {self.day:>3}  {self.as_of:%Y-%m-%d}  {self.reason}"
        mae = f"{self.mae:.4f}" if self.mae is not None else "  n/a "
        samples = self.n_samples if self.n_samples is not None else 0
        bounds = format_bounds(self.mae_lower_bound, self.mae_upper_bound)
        return (
            f"day {self.day:>3}  {self.as_of:%Y-%m-%d}  MAE {mae}  true {bounds}  "
            f"n={samples:>4}  {self.status:<18} champion {self.champion or '-'}"
        )

    def over_threshold(self, gate: str) -> bool:
        """`gate` finds the champion of this day over the threshold."""
        return (self.views or {}).get(gate) == "retrain"


def live_day(db: Database, world: DemoWorld, predictor: CTRPredictor, day: int) -> None:
    spec = world.spec
    launch = world.launch(day)
    launched = videos_table(launch, 0, spec.day_start(day))
    writes.upsert_videos(db, launched)
    real = launch.bad_kind == ""
    predicted_at = launch.created_at[real] + np.timedelta64(5, "m")
    if predictor.registry.champion() is None:
        ctr = world.legacy_ctr(launch)
        table = predictions_table(
            launch, ctr, world.roas_forecast(launch, ctr), LEGACY_MODEL_VERSION
        )
        writes.insert_predictions(db, table)
    else:
        candidates = launched.filter(pa.array(real))
        ctr = np.zeros(len(launch))
        ctr[real] = predictor.predict(candidates).predicted_ctr
        predictor.predict_and_record(
            candidates, predicted_at, world.roas_forecast(launch, ctr)[real]
        )
    end_of_day = spec.day_start(day + 1)
    delivering = [world.launch(d) for d in range(max(0, day - spec.run_days + 1), day + 1)]
    writes.upsert_videos(
        db,
        pa.concat_tables(
            videos_table(earlier, delivered_days(spec, earlier, day), end_of_day)
            for earlier in delivering
        ),
    )
    resolving = day - spec.resolve_after_days + 1
    if resolving >= 0:
        writes.resolve_predictions(db, outcomes_table(world.launch(resolving), spec))
    writes.insert_purchases(
        db,
        pa.concat_tables(
            purchases_table(earlier, spec, day - earlier.day) for earlier in delivering
        ),
    )


def run_demo(
    db: Database,
    spec: WorldSpec,
    model_dir: Path,
    *,
    instance: dg.DagsterInstance,
    first_check_day: int = 7,
    on_day: Callable[[DemoDay], None] = lambda _: None,
    retrain_settings: dict[str, Any] | None = None,
) -> list[DemoDay]:
    """Lives through every day of `spec` in `db` (which should be empty) and returns each
    day's decision. Before `first_check_day` the legacy model serves alone and no check
    runs: the history a real deployment starts from."""
    world = DemoWorld(spec)
    predictor = CTRPredictor(ModelRegistry(db, model_dir))
    days: list[DemoDay] = []
    for day in range(spec.days):
        live_day(db, world, predictor, day)
        as_of = spec.day_start(day + 1)
        if day < first_check_day:
            history = DemoDay(
                day,
                as_of,
                "history",
                None,
                None,
                None,
                f"history: {LEGACY_MODEL_VERSION} serving, no check yet",
                True,
            )
            on_day(history)
            days.append(history)
            continue
        run = run_check_in_process(
            instance,
            db,
            trigger="schedule",
            model_dir=str(model_dir),
            as_of=as_of,
            log_level="CRITICAL",
            retrain_settings=retrain_settings,
        )
        if run.record is None:
            raise RuntimeError(
                f"day {day}: the check run {run.run_id} left no decision record; see the run's logs"
            )
        record = run.record
        outcome = DemoDay(
            day=day,
            as_of=as_of,
            status=record["status"],
            mae=record["mae"],
            n_samples=record["n_samples"],
            champion=record["champion_after"],
            reason=record["reason"],
            run_success=run.success,
            mae_lower_bound=record.get("mae_lower_bound"),
            mae_upper_bound=record.get("mae_upper_bound"),
            views=record.get("views"),
        )
        on_day(outcome)
        days.append(outcome)
    return days
