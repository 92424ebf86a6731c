"""`ctr-assets models list|champion|rollback` against a real database and model files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from ctr_assets.cli import main
from ctr_assets.db.connection import Database
from ctr_assets.ml.evaluation import score_on_holdout
from ctr_assets.ml.training import TrainedModel
from ctr_assets.models.registry import ModelRegistry, ModelVersion

T0 = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "ctr-home"


@pytest.fixture
def env(db: Database, home: Path) -> dict[str, str]:
    return {"DATABASE_URL": db.url, "CTR_HOME": str(home)}


@pytest.fixture
def registry(db: Database, home: Path) -> ModelRegistry:
    """The registry the command line sees: model files under CTR_HOME/models."""
    return ModelRegistry(db, home / "models")


@pytest.fixture
def two_promoted(
    registry: ModelRegistry, boosters: tuple[TrainedModel, TrainedModel], frame: pd.DataFrame
) -> tuple[ModelVersion, ModelVersion]:
    """A first champion, then a second that replaced it."""
    models = []
    for minutes, trained in enumerate(boosters):
        score = score_on_holdout(trained.booster, frame)
        models.append(registry.register(trained, score, {}, T0 + timedelta(minutes=minutes)))
    first, second = models
    registry.promote(first.version, None, "no champion yet")
    registry.promote(second.version, first.version, "better on the hold-out")
    return first, second


def _cli(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["models", *args], env=env)


def _history(db: Database) -> list[tuple]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT version, previous_version, action, reason FROM champion_history ORDER BY id"
        )
        return cur.fetchall()


def test_champion_without_a_champion_exits_1_and_says_what_to_do(env: dict[str, str]) -> None:
    result = _cli(env, "champion")
    assert result.exit_code == 1, result.output
    assert "no champion yet" in result.stderr
    assert "ctr-assets check-retrain" in result.stderr
    assert result.stdout == ""


def test_list_marks_the_champion_with_a_star(
    env: dict[str, str], two_promoted: tuple[ModelVersion, ModelVersion]
) -> None:
    first, second = two_promoted

    result = _cli(env, "list")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"  {first.version} ")  # oldest first, not champion
    assert lines[1].startswith(f"* {second.version} ")
    assert f"hold-out MAE {second.holdout_mae:.4f}" in lines[1]
    assert f"rows {second.training_rows}" in lines[1]


def test_champion_prints_the_champion_as_json(
    env: dict[str, str], two_promoted: tuple[ModelVersion, ModelVersion]
) -> None:
    first, second = two_promoted

    result = _cli(env, "champion")

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["version"] == second.version
    assert shown["previous_version"] == first.version
    assert shown["action"] == "promoted"
    assert shown["reason"] == "better on the hold-out"
    assert shown["sha256"] == second.sha256
    assert shown["file"] == second.file_path
    assert shown["holdout_mae"] == pytest.approx(second.holdout_mae)
    assert datetime.fromisoformat(shown["since"]).tzinfo is not None


def test_rollback_makes_the_first_version_champion_again(
    env: dict[str, str],
    registry: ModelRegistry,
    db: Database,
    two_promoted: tuple[ModelVersion, ModelVersion],
) -> None:
    first, second = two_promoted

    result = _cli(env, "rollback", first.version, "--reason", "second one misbehaves")

    assert result.exit_code == 0, result.output
    assert f"champion: {first.version} (was {second.version})" in result.stdout
    assert registry.champion().version == first.version
    assert _history(db)[-1] == (
        first.version,
        second.version,
        "rolled_back",
        "second one misbehaves",
    )
    assert len(_history(db)) == 3
    listed = _cli(env, "list").stdout.splitlines()
    assert [line[:2] for line in listed] == ["* ", "  "]
    assert json.loads(_cli(env, "champion").stdout)["action"] == "rolled_back"


def _alter(path: Path) -> None:
    path.write_bytes(path.read_bytes().replace(b"learner", b"learnxr", 1))


def _delete(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(
    ("damage", "message"),
    [(_alter, "was changed or replaced"), (_delete, "does not exist")],
    ids=["altered", "deleted"],
)
def test_rollback_to_a_damaged_file_is_refused_and_the_champion_stays(
    env: dict[str, str],
    registry: ModelRegistry,
    db: Database,
    two_promoted: tuple[ModelVersion, ModelVersion],
    damage,
    message: str,
) -> None:
    """Run as an operator would: the installed console script, its stderr, its exit code."""
    first, second = two_promoted
    damage(Path(first.file_path))
    history = _history(db)
    command = shutil.which("ctr-assets", path=str(Path(sys.executable).parent)) or "ctr-assets"

    done = subprocess.run(
        [command, "models", "rollback", first.version],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode != 0, done.stdout
    assert message in done.stderr
    assert first.file_path in done.stderr
    assert registry.champion().version == second.version
    assert _history(db) == history


@pytest.mark.parametrize("target", ["unknown", "current_champion"])
def test_rollback_to_an_unknown_version_or_the_champion_fails(
    env: dict[str, str],
    registry: ModelRegistry,
    db: Database,
    two_promoted: tuple[ModelVersion, ModelVersion],
    target: str,
) -> None:
    _, second = two_promoted
    version = "ctr-nope" if target == "unknown" else second.version
    history = _history(db)

    result = _cli(env, "rollback", version)

    assert result.exit_code != 0
    assert version in str(result.exception) + result.output
    assert registry.champion().version == second.version
    assert _history(db) == history
