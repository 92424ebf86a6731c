"""Worlds lived day by day up to a check: the states the retrain tests start from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from ctr_assets.db.connection import Database
from ctr_assets.models.registry import ModelRegistry
from ctr_assets.orchestration.demo import live_day
from ctr_assets.orchestration.run_check import CheckRun, run_check_in_process
from ctr_assets.serving.predictor import CTRPredictor
from ctr_assets.simulation.world import DemoWorld, WorldSpec
from ctr_assets_tests.world_specs import END


@dataclass
class Scenario:
    db: Database
    world: DemoWorld
    registry: ModelRegistry
    instance: dg.DagsterInstance
    model_dir: Path
    day: int = -1  # the last day lived

    def live_until(self, last_day: int) -> None:
        predictor = CTRPredictor(self.registry)
        for day in range(self.day + 1, last_day + 1):
            live_day(self.db, self.world, predictor, day)
        self.day = last_day

    def check(self, **kwargs) -> CheckRun:
        """One check through Dagster, as of the end of the last day lived."""
        kwargs.setdefault("as_of", self.world.spec.day_start(self.day + 1))
        return run_check_in_process(self.instance, self.db, model_dir=str(self.model_dir), **kwargs)

    def count(self, sql: str) -> int:
        with self.db.connect() as conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]


def scenario_spec(drift_day: int | None, **overrides: object) -> WorldSpec:
    settings: dict[str, object] = {
        "seed": 11,
        "days": 20,
        "videos": 20 * 150,
        "drift_day": drift_day,
        "bad_row_fraction": 0.01,
        "end": END,
    }
    return WorldSpec(**{**settings, **overrides})  # type: ignore[arg-type]


def make_scenario(
    db: Database,
    instance: dg.DagsterInstance,
    tmp_path: Path,
    drift_day: int | None,
    **overrides: object,
) -> Scenario:
    model_dir = tmp_path / "models"
    return Scenario(
        db=db,
        world=DemoWorld(scenario_spec(drift_day, **overrides)),
        registry=ModelRegistry(db, model_dir),
        instance=instance,
        model_dir=model_dir,
    )


def with_champion(scenario: Scenario, trained_after_day: int, lived_until: int) -> Scenario:
    """A first champion trained on the days up to `trained_after_day`, then serving."""
    scenario.live_until(trained_after_day)
    first = scenario.check()
    if first.record is None or first.record["status"] != "retrained":
        raise AssertionError(f"the first check did not train a champion: {first}")
    scenario.live_until(lived_until)
    return scenario
