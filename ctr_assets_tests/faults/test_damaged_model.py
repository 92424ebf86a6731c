"""A damaged or missing champion file: bytes flipped, truncated, deleted.

Two models have served: the first (`earlier`) and the champion. The champion's real file
on disk is damaged. The predictor refuses it, naming the file, the checksum recorded when
it was saved and the way out; `ctr-assets check-retrain` (the installed console script)
reports `error` with the same words, scores nothing and trains nothing, in one line on
stderr (the stack trace only with --verbose) and in the JSON record; `ctr-assets models
rollback` to the earlier version then works, and the next check succeeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from ctr_assets.data.training_frame import load_training_frame
from ctr_assets.db.connection import Database
from ctr_assets.ml.evaluation import HoldoutScore
from ctr_assets.ml.training import TrainingParams, train_ctr_model
from ctr_assets.models.registry import DamagedChampionError, ModelRegistry, ModelVersion
from ctr_assets.retraining.record import decision_for_run
from ctr_assets.serving.predictor import CTRPredictor
from ctr_assets.simulation.populate import populate
from ctr_assets_tests.conftest import _admin, _with_database
from ctr_assets_tests.world_specs import small_world

BIN = Path(sys.executable).parent


def _flip_a_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _delete(path: Path) -> None:
    path.unlink()


DAMAGES: dict[str, Callable[[Path], None]] = {
    "flipped": _flip_a_byte,
    "truncated": _truncate,
    "deleted": _delete,
}


@dataclass
class Served:
    db: Database
    home: Path
    registry: ModelRegistry
    earlier: ModelVersion
    champion: ModelVersion
    champion_bytes: bytes
    earlier_bytes: bytes
    videos: pa.Table

    def restore(self) -> None:
        """Both files intact again, and the champion serving."""
        Path(self.champion.file_path).write_bytes(self.champion_bytes)
        Path(self.earlier.file_path).write_bytes(self.earlier_bytes)
        current = self.registry.champion()
        if current.version != self.champion.version:
            self.registry.promote(self.champion.version, current.version, "restored")

    def count(self, table: str) -> int:
        with self.db.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {table}")
            return cur.fetchone()[0]


@pytest.fixture(scope="module")
def world(
    pg_admin_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    name = f"ctr_damaged_{os.urandom(5).hex()}"
    admin = _admin(pg_admin_url)
    admin.cursor().execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    db = Database(_with_database(pg_admin_url, name))
    home = tmp_path_factory.mktemp("damaged-model")
    populate(db, small_world(bad_row_fraction=0.0))
    frame = load_training_frame(db).frame
    registry = ModelRegistry(db, home / "models")
    score = HoldoutScore(mae=0.01, r2=0.5, rows=100, mean_predicted=0.02, mean_actual=0.02)
    now = datetime.now(UTC)
    served: list[ModelVersion] = []
    for minutes, seed in ((0, 0), (1, 1)):
        trained = train_ctr_model(frame, TrainingParams(num_boost_round=20, seed=seed))
        model = registry.register(trained, score, {}, now + timedelta(minutes=minutes))
        registry.promote(model.version, served[-1].version if served else None, "better")
        served.append(model)
    with db.connect_arrow() as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM videos WHERE impressions >= 100 ORDER BY video_id LIMIT 50")
        videos = cur.fetch_arrow_table()
    yield Served(
        db,
        home,
        registry,
        served[0],
        served[1],
        Path(served[1].file_path).read_bytes(),
        Path(served[0].file_path).read_bytes(),
        videos,
    )
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def served(world: Served) -> Served:
    world.restore()
    return world


def _cli(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(DATABASE_URL=served.db.url, CTR_HOME=str(served.home))
    return subprocess.run(
        [str(BIN / "ctr-assets"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_the_predictor_refuses_a_damaged_champion_and_names_the_way_out(
    served: Served, damage: str
) -> None:
    champion = served.champion
    DAMAGES[damage](Path(champion.file_path))

    with pytest.raises(DamagedChampionError) as refused:
        CTRPredictor(served.registry).predict(served.videos)

    message = str(refused.value)
    assert champion.file_path in message
    assert champion.sha256 in message
    assert f"`ctr-assets models rollback {served.earlier.version}`" in message
    if damage != "deleted":
        assert "has sha256 " in message  # the checksum the file has now, too


def test_with_no_intact_earlier_champion_the_way_out_is_a_backup(served: Served) -> None:
    _delete(Path(served.earlier.file_path))
    _flip_a_byte(Path(served.champion.file_path))

    with pytest.raises(DamagedChampionError) as refused:
        CTRPredictor(served.registry).predict(served.videos)

    assert f"restore {served.champion.file_path} from a backup" in str(refused.value)
    assert "rollback" not in str(refused.value)


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_check_retrain_reports_error_with_the_way_out_and_rollback_then_works(
    served: Served, damage: str
) -> None:
    champion, earlier = served.champion, served.earlier
    predictions, versions = served.count("prediction_records"), served.count("model_versions")
    DAMAGES[damage](Path(champion.file_path))
    verbose = damage == "truncated"  # one case shows the trace is there when asked for

    checked = _cli(served, *(["--verbose"] if verbose else []), "check-retrain", "--in-process")

    assert checked.returncode == 1, checked.stdout[-2000:] + checked.stderr[-2000:]
    record = json.loads(checked.stdout)
    assert record["status"] == "error"
    reason = record["reason"]
    assert champion.file_path in reason
    assert champion.sha256 in reason
    assert f"`ctr-assets models rollback {earlier.version}`" in reason
    assert record["champion_before"] == record["champion_after"] == champion.version
    assert record["challenger"] is None  # nothing was trained
    assert decision_for_run(served.db, record["run_id"])["reason"] == reason
    stderr = checked.stderr.splitlines()
    assert stderr[-1] == f"Error: the check failed: {reason}"
    if verbose:
        assert "Traceback" in checked.stderr or "Stack Trace" in checked.stderr
    else:
        assert len(stderr) == 1, checked.stderr
    # Nothing was scored with the corrupt model, nothing trained, the champion unchanged.
    assert served.count("prediction_records") == predictions
    assert served.count("model_versions") == versions
    assert served.registry.champion().version == champion.version

    if damage != "flipped":
        return  # the way out is the same whatever the damage: walked once
    rolled = _cli(served, "models", "rollback", earlier.version)
    assert rolled.returncode == 0, rolled.stderr
    assert f"champion: {earlier.version} (was {champion.version})" in rolled.stdout
    served.registry.load_champion(served.registry.champion())

    after = _cli(served, "check-retrain", "--in-process")

    assert after.returncode == 0, after.stderr[-3000:]
    again = json.loads(after.stdout)
    assert again["status"] != "error", again["reason"]
    assert again["champion_before"] == earlier.version
