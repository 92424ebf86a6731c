"""The disk fills while the model file is written.

For real: the model store is a small tmpfs (mounting needs root, which CI has: there a
refused mount fails the test; elsewhere it skips), the champion's file on it, the rest of
the space taken by another file. `ctr-assets check-retrain` must retrain and cannot write
the challenger: status `error`, one line naming the disk and the fix, the temporary file
gone, the champion unchanged. Once space is freed, the next check retrains.

And at the exact write call (runs everywhere): `OSError(ENOSPC)` raised by the write after
half the bytes went out, as a full disk does.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from ctr_assets.db.connection import Database
from ctr_assets.ml.evaluation import HoldoutScore
from ctr_assets.ml.model_files import ModelDiskFullError
from ctr_assets.ml.training import TrainedModel
from ctr_assets.models.registry import ModelRegistry
from ctr_assets.orchestration.run_check import run_check_in_process
from ctr_assets.serving.predictor import CTRPredictor
from ctr_assets.simulation.populate import populate
from ctr_assets_tests.world_specs import small_world

BIN = Path(sys.executable).parent
DISK_BYTES = 2 * 1024 * 1024
WEAK = {"num_boost_round": 3}  # a champion every challenger beats


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs at CTR_HOME/models (the model store), unmounted afterwards."""
    mount = tmp_path / "ctr_home" / "models"
    mount.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        message = f"cannot mount a tmpfs here ({done.stderr.strip()}); needs root"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _stale_champion(db: Database, model_dir: Path) -> str:
    """A weak first champion, then outcomes it missed by 0.05: the next check retrains."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    populate(db, small_world(bad_row_fraction=0.0, end=today))
    with dg.instance_for_test() as instance:
        first = run_check_in_process(instance, db, model_dir=str(model_dir), training_config=WEAK)
    assert first.record is not None, first
    assert first.record["status"] == "retrained", first.record
    registry = ModelRegistry(db, model_dir)
    with db.connect_arrow() as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM videos WHERE impressions >= 100 ORDER BY video_id LIMIT 300")
        videos = cur.fetch_arrow_table()
    CTRPredictor(registry).predict_and_record(videos, datetime.now(UTC) - timedelta(days=2))
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE prediction_records SET actual_ctr = least(1, predicted_ctr + 0.05), "
            "actual_impressions = 5000, resolved_at = predicted_at + interval '1 day' "
            "WHERE model_version = %s",
            (first.record["champion_after"],),
        )
    return first.record["champion_after"]


def _fill(disk: Path) -> Path:
    """Takes every free byte of the disk with one file."""
    filler = disk / "filler"
    filler.write_bytes(b"\0" * shutil.disk_usage(disk).free)
    assert shutil.disk_usage(disk).free == 0
    return filler


def _check_retrain(db: Database, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(DATABASE_URL=db.url, CTR_HOME=str(home))
    return subprocess.run(
        [str(BIN / "ctr-assets"), "check-retrain", "--in-process"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_full_disk_fails_the_check_in_one_line_and_leaves_the_champion(
    db: Database, tmp_path: Path, small_disk: Path
) -> None:
    home = small_disk.parent
    registry = ModelRegistry(db, small_disk)
    champion = _stale_champion(db, small_disk)
    before = sorted(p.name for p in small_disk.iterdir())
    filler = _fill(small_disk)

    full = _check_retrain(db, home)

    assert full.returncode == 1, full.stdout[-2000:] + full.stderr[-2000:]
    lines = full.stderr.splitlines()
    assert len(lines) == 1, full.stderr  # no stack trace
    assert lines[0].startswith("Error: the check failed: ")
    assert f"no space left on the disk mounted at {small_disk}" in lines[0]
    assert f"Free space on {small_disk}" in lines[0]
    record = json.loads(full.stdout)
    assert record["status"] == "error"
    assert " ".join(record["reason"].split()) in lines[0]
    assert record["champion_before"] == record["champion_after"] == champion
    # Nothing half-written is left, and the champion serves as before.
    assert sorted(p.name for p in small_disk.iterdir()) == [*before, "filler"]
    assert registry.champion().version == champion
    assert [v.version for v in registry.versions()] == [champion]
    registry.load_champion(registry.champion())

    filler.unlink()  # the fix the line names
    freed = _check_retrain(db, home)

    assert freed.returncode == 0, freed.stderr[-3000:]
    assert json.loads(freed.stdout)["status"] == "retrained"
    assert registry.champion().version != champion
    registry.load_champion(registry.champion())


def test_enospc_at_the_write_removes_the_temporary_file_and_names_the_disk(
    db: Database,
    tmp_path: Path,
    boosters: tuple[TrainedModel, TrainedModel],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    models = tmp_path / "models"
    registry = ModelRegistry(db, models)
    score = HoldoutScore(mae=0.01, r2=0.5, rows=10, mean_predicted=0.02, mean_actual=0.02)
    champion = registry.register(boosters[0], score, {}, datetime.now(UTC))
    registry.promote(champion.version, None, "first")
    real_fdopen = os.fdopen

    class HalfWrittenThenFull:
        """The temporary model file: its write puts half the bytes on disk, then finds the
        disk full."""

        def __init__(self, file) -> None:
            self.file = file

        def write(self, content: bytes) -> int:
            self.file.write(content[: len(content) // 2])
            self.file.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name: str):
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.file.close()

    def fdopen(fd: int, *args, **kwargs):
        opened = real_fdopen(fd, *args, **kwargs)
        if Path(os.readlink(f"/proc/self/fd/{fd}")).parent == models:
            return HalfWrittenThenFull(opened)  # only the write of the model file
        return opened

    monkeypatch.setattr(os, "fdopen", fdopen)

    with pytest.raises(ModelDiskFullError) as raised:
        registry.register(boosters[1], score, {}, datetime.now(UTC) + timedelta(minutes=1))

    message = str(raised.value)
    assert message.startswith("no space left on the disk mounted at ")
    assert f"for the model file in {models}" in message
    assert "the partial file was removed. Free space on " in message
    assert raised.value.errno == errno.ENOSPC
    assert sorted(p.name for p in models.iterdir()) == [Path(champion.file_path).name]
    assert registry.champion().version == champion.version
    assert [v.version for v in registry.versions()] == [champion.version]
