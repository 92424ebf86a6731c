"""The run worker of a check killed with -9 at each point of the check.

The stack is the deployed one (`check_stack.py`): a code server whose child processes are
the run workers, a real `dagster-daemon`, the shipped `dagster.yaml` (queued runs, the
pool `ctr_model_training` limited to 1, run monitoring with its intervals shortened). A
check that must retrain is launched with a fault point armed (`ctr_assets/faults.py`); the
worker pauses there, and the test kills it with SIGKILL. Then:

- Dagster marks the run failed and frees the training slot within a bounded time (the
  figures are printed: `pytest -s`);
- the champion is the old one or the new one, whole: every `champion_history` row points at
  a file that matches its checksum, and no temporary file is left;
- the killed check has its decision record: `error`, the run id and the cause in words,
  and what it left (written by the sensor `ctr_record_failed_check`);
- the next check runs to its end without anyone doing anything.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from ctr_assets.db.connection import Database
from ctr_assets.models.registry import ModelRegistry
from ctr_assets.retraining.record import decision_for_run
from ctr_assets.serving.predictor import CTRPredictor
from ctr_assets.simulation.populate import populate
from ctr_assets_tests.conftest import _admin, _with_database
from ctr_assets_tests.faults.check_stack import (
    FREE_SLOTS_AFTER_SECONDS,
    POLL_SECONDS,
    CheckStack,
    check_stack,
)
from ctr_assets_tests.world_specs import small_world

# Dagster's code server notices a dead worker within half a second; the monitoring daemon
# frees its slot FREE_SLOTS_AFTER_SECONDS after the run ended, at its next poll. The rest
# is slack for a shared 2-core machine.
FAILED_WITHIN_SECONDS = 10
FREED_WITHIN_SECONDS = FREE_SLOTS_AFTER_SECONDS + POLL_SECONDS + 10
RECORDED_WITHIN_SECONDS = 60  # the recording sensor ticks every 10 s


WEAK_CHAMPION = {"ops": {"retrain_check": {"config": {"num_boost_round": 3}}}}


@dataclass
class World:
    db: Database
    registry: ModelRegistry
    stack: CheckStack
    stale_champion: str  # serves, and its accuracy says retrain


def _database(admin_url: str, name: str, template: str | None = None) -> Database:
    admin = _admin(admin_url)
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    admin.close()
    return Database(_with_database(admin_url, name))


def _drop(admin_url: str, *names: str) -> None:
    admin = _admin(admin_url)
    with admin.cursor() as cur:
        for name in names:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def _make_stale(db: Database, registry: ModelRegistry, version: str) -> None:
    """The champion predicts 300 videos two days ago and misses each by 0.05 (a drift it
    did not see), on outcomes of 5,000 impressions: the gate says retrain, beyond noise."""
    with db.connect_arrow() as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM videos WHERE impressions >= 100 ORDER BY video_id LIMIT 300")
        videos = cur.fetch_arrow_table()
    CTRPredictor(registry).predict_and_record(videos, datetime.now(UTC) - timedelta(days=2))
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE prediction_records SET actual_ctr = least(1, predicted_ctr + 0.05), "
            "actual_impressions = 5000, resolved_at = predicted_at + interval '1 day' "
            "WHERE model_version = %s",
            (version,),
        )


@pytest.fixture(scope="module")
def world(
    pg_admin_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    suffix = os.urandom(5).hex()
    app, storage = f"ctr_killed_{suffix}", f"dagster_killed_{suffix}"
    db = _database(pg_admin_url, app, template_database)
    storage_url = _database(pg_admin_url, storage).sqlalchemy_url
    home = tmp_path_factory.mktemp("killed-worker")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    populate(db, small_world(bad_row_fraction=0.0, end=today))
    environment = {
        **{k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},
        "DATABASE_URL": db.url,
        "CTR_HOME": str(home / "ctr_home"),
        "DAGSTER_POSTGRES_URL": storage_url,
    }
    registry = ModelRegistry(db, home / "ctr_home" / "models")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DAGSTER_POSTGRES_URL", storage_url)  # dagster.yaml reads it here too
            with check_stack(environment, home) as stack:
                # A weak first champion (3 boosting rounds): every later challenger beats it.
                first = stack.launch(run_config=WEAK_CHAMPION)
                finished = stack.wait_until_finished(first)
                assert finished.status == dg.DagsterRunStatus.SUCCESS, stack.log_tail()
                champion = registry.champion()
                assert champion is not None
                _make_stale(db, registry, champion.version)
                yield World(db, registry, stack, champion.version)
    finally:
        _drop(pg_admin_url, app, storage)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be read


def _files(registry: ModelRegistry) -> set[str]:
    return {path.name for path in registry.directory.iterdir()}


def _assert_champion_whole(registry: ModelRegistry) -> None:
    """Every version that ever served has the file it was saved as; nothing half-written."""
    for change in registry.history():
        registry.verify(registry.get(change.version))
    assert not [name for name in _files(registry) if name.endswith(".tmp")]


def _wait_for_record(db: Database, run_id: str) -> dict:
    deadline = time.monotonic() + RECORDED_WITHIN_SECONDS
    while (record := decision_for_run(db, run_id)) is None:
        assert time.monotonic() < deadline, f"run {run_id} has no decision record"
        time.sleep(0.5)
    return record


# Where the worker dies, whether the training step (in the pool) had started, and what the
# check has left by then: a model file, a version row, a champion_history row.
POINTS = {
    "loading": (False, 0, 0, 0),
    "training": (True, 0, 0, 0),
    "before_promotion": (True, 1, 1, 0),
    "after_promotion": (True, 1, 1, 1),
}


@pytest.mark.parametrize("point", list(POINTS))
def test_a_killed_check_fails_frees_its_slot_and_leaves_a_whole_champion_and_a_record(
    world: World, point: str
) -> None:
    db, registry, stack = world.db, world.registry, world.stack
    if registry.champion().version != world.stale_champion:
        registry.roll_back(world.stale_champion, "back to the stale champion for the next case")
    in_pool, new_files, new_versions, new_champions = POINTS[point]
    files, versions = _files(registry), {v.version for v in registry.versions()}
    history = registry.history()

    stack.arm(point)
    run_id = stack.launch()
    paused = stack.paused_pid(point, run_id)
    assert (run_id in stack.slot_holders()) is in_pool  # the slot the kill must not strand
    os.kill(stack.run_worker(run_id), signal.SIGKILL)
    killed = time.monotonic()
    # Nothing of the killed run may go on (a step process of its own would train and
    # promote unseen, after the run was marked failed and its slot given away).
    while _alive(paused):
        assert time.monotonic() - killed < 5, f"process {paused} of the killed run lives on"
        time.sleep(0.05)
    stack.disarm(point)

    run = stack.wait_until_finished(run_id, timeout=FAILED_WITHIN_SECONDS)
    failed = time.monotonic() - killed
    assert run.status == dg.DagsterRunStatus.FAILURE
    while run_id in stack.slot_holders():
        assert time.monotonic() - killed < FREED_WITHIN_SECONDS, "the pool slot stayed taken"
        time.sleep(0.1)
    freed = time.monotonic() - killed
    print(f"\n{point}: run failed {failed:.1f} s after the kill, slot free after {freed:.1f} s")

    # What is left: the old champion or the new one, whole.
    added = _files(registry) - files
    assert len(added) == new_files, added
    created = [v for v in registry.versions() if v.version not in versions]
    assert len(created) == new_versions, created
    assert len(registry.history()) == len(history) + new_champions
    champion = registry.champion()
    expected = created[0].version if new_champions else world.stale_champion
    assert champion.version == expected
    _assert_champion_whole(registry)
    registry.load_champion(champion)

    # The next check needs nobody: it gets the slot and decides. (Launched now, it runs
    # while the recording sensor's next tick comes round.)
    after = stack.launch()

    # The killed check's record: error, the run, the cause, what it left.
    record = _wait_for_record(db, run_id)
    assert record["status"] == "error"
    assert record["run_id"] == run_id
    assert run_id in record["reason"]
    assert "terminated by signal 9 (SIGKILL)" in record["reason"]
    assert record["champion_before"] == world.stale_champion
    assert record["champion_after"] == champion.version
    assert record["challenger"] == (created[0].version if created else None)
    if new_champions:
        assert f"and {champion.version} when it failed" in record["reason"]
    else:
        assert f"the champion is unchanged ({world.stale_champion})" in record["reason"]

    assert stack.wait_until_finished(after).status == dg.DagsterRunStatus.SUCCESS, stack.log_tail()
    decided = decision_for_run(db, after)
    assert decided is not None
    assert decided["status"] == ("insufficient_data" if new_champions else "retrained"), decided
    _assert_champion_whole(registry)
