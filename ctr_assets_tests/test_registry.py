"""The model registry: files with checksums, versions in the database, one champion."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import psycopg2.extensions
import pytest

from ctr_assets.db.connection import Database
from ctr_assets.ml.evaluation import HoldoutScore, predict_ctr, score_on_holdout
from ctr_assets.ml.model_files import ModelFileError
from ctr_assets.ml.training import TrainedModel
from ctr_assets.models.registry import ChampionChangedError, ModelRegistry, ModelVersion

T0 = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)
PARAMS = {"num_boost_round": 20, "max_depth": 4}


@dataclass(frozen=True)
class Candidate:
    trained: TrainedModel
    score: HoldoutScore


@pytest.fixture(scope="module")
def candidates(
    frame: pd.DataFrame, boosters: tuple[TrainedModel, TrainedModel]
) -> tuple[Candidate, Candidate]:
    """Two different models of the same frame, so their predictions tell them apart."""
    first, second = (Candidate(t, score_on_holdout(t.booster, frame)) for t in boosters)
    return first, second


@pytest.fixture
def registry(db: Database, tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(db, tmp_path / "models")


def _register(registry: ModelRegistry, candidate: Candidate, minutes: int = 0) -> ModelVersion:
    return registry.register(
        candidate.trained, candidate.score, PARAMS, T0 + timedelta(minutes=minutes)
    )


def _history_rows(db: Database) -> list[tuple]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT version, previous_version, action, reason FROM champion_history ORDER BY id"
        )
        return cur.fetchall()


def test_register_saves_an_xgboost_file_with_its_checksum_and_a_version_row(
    registry: ModelRegistry,
    candidates: tuple[Candidate, Candidate],
    frame: pd.DataFrame,
    db: Database,
) -> None:
    first, _ = candidates
    model = _register(registry, first)

    path = Path(model.file_path)
    content = path.read_bytes()
    assert path == registry.directory / f"{model.version}.json"
    assert "learner" in json.loads(content)  # XGBoost's own JSON format
    assert model.sha256 == hashlib.sha256(content).hexdigest()
    assert sorted(p.name for p in registry.directory.iterdir()) == [path.name]  # no temp file

    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT version, created_at, file_path, sha256, training_rows, holdout_rows, "
            "holdout_mae, holdout_r2, params FROM model_versions"
        )
        rows = cur.fetchall()
    assert rows == [
        (
            model.version,
            T0,
            str(path),
            hashlib.sha256(content).hexdigest(),
            first.trained.training_rows,
            first.score.rows,
            first.score.mae,
            first.score.r2,
            PARAMS,
        )
    ]
    loaded = registry.load(model)
    np.testing.assert_array_equal(
        predict_ctr(loaded, frame), predict_ctr(first.trained.booster, frame)
    )


def test_a_registered_version_is_not_champion_until_promoted(
    registry: ModelRegistry, candidates: tuple[Candidate, Candidate], db: Database
) -> None:
    model = _register(registry, candidates[0])
    assert registry.champion() is None
    assert registry.history() == []
    assert [v.version for v in registry.versions()] == [model.version]

    registry.promote(model.version, expected_champion=None, reason="no champion yet")

    champion = registry.champion()
    assert champion is not None
    assert champion.version == model.version
    assert _history_rows(db) == [(model.version, None, "promoted", "no champion yet")]


def test_promotion_records_the_previous_champion(
    registry: ModelRegistry, candidates: tuple[Candidate, Candidate], db: Database
) -> None:
    old = _register(registry, candidates[0])
    new = _register(registry, candidates[1], minutes=1)
    registry.promote(old.version, None, "no champion yet")
    registry.promote(new.version, old.version, "better on the hold-out")

    assert registry.champion().version == new.version
    assert _history_rows(db) == [
        (old.version, None, "promoted", "no champion yet"),
        (new.version, old.version, "promoted", "better on the hold-out"),
    ]
    history = registry.history()
    assert [h.previous_version for h in history] == [None, old.version]
    assert history[0].changed_at <= history[1].changed_at


@pytest.mark.parametrize("stale", ["none", "other_version"])
def test_promotion_against_a_stale_champion_is_refused(
    registry: ModelRegistry, candidates: tuple[Candidate, Candidate], db: Database, stale: str
) -> None:
    old = _register(registry, candidates[0])
    new = _register(registry, candidates[1], minutes=1)
    registry.promote(old.version, None, "no champion yet")
    before = _history_rows(db)
    # The caller compared against no champion, or against a version that is not champion.
    expected = None if stale == "none" else new.version

    with pytest.raises(ChampionChangedError) as raised:
        registry.promote(new.version, expected, "compared against a stale champion")

    assert old.version in str(raised.value)
    assert "again" in str(raised.value)  # says what to do
    assert registry.champion().version == old.version
    assert _history_rows(db) == before


def test_two_racing_promotions_against_the_same_champion_exactly_one_wins(
    registry: ModelRegistry, candidates: tuple[Candidate, Candidate], db: Database
) -> None:
    first = _register(registry, candidates[0])
    registry.promote(first.version, None, "no champion yet")
    rounds = 5
    for round_ in range(rounds):
        current = registry.champion().version
        racers = [
            _register(registry, candidates[0], minutes=10 * round_ + 1).version,
            _register(registry, candidates[1], minutes=10 * round_ + 2).version,
        ]
        start = threading.Barrier(len(racers))

        def attempt(version: str, expected: str = current, start=start) -> bool:
            start.wait()
            try:
                registry.promote(version, expected, "raced")
            except ChampionChangedError:
                return False
            return True

        with ThreadPoolExecutor(max_workers=len(racers)) as pool:
            won = list(pool.map(attempt, racers))

        assert sorted(won) == [False, True], (
            f"round {round_}: {dict(zip(racers, won, strict=True))}"
        )
        winner = racers[won.index(True)]
        assert registry.champion().version == winner
        assert _history_rows(db)[-1] == (winner, current, "promoted", "raced")
    assert len(_history_rows(db)) == 1 + rounds


def test_roll_back_makes_an_earlier_version_champion_and_keeps_every_version(
    registry: ModelRegistry, candidates: tuple[Candidate, Candidate], db: Database
) -> None:
    old = _register(registry, candidates[0])
    new = _register(registry, candidates[1], minutes=1)
    registry.promote(old.version, None, "no champion yet")
    registry.promote(new.version, old.version, "better")

    replaced = registry.roll_back(old.version, "new model misbehaves in production")

    assert replaced == new.version
    assert registry.champion().version == old.version
    assert _history_rows(db)[-1] == (
        old.version,
        new.version,
        "rolled_back",
        "new model misbehaves in production",
    )
    assert len(_history_rows(db)) == 3
    assert [v.version for v in registry.versions()] == [old.version, new.version]
    assert Path(new.file_path).exists()


def test_roll_back_to_the_current_champion_fails_clearly(
    registry: ModelRegistry, candidates: tuple[Candidate, Candidate], db: Database
) -> None:
    model = _register(registry, candidates[0])
    registry.promote(model.version, None, "no champion yet")

    with pytest.raises(ValueError, match=f"{model.version} is already the champion"):
        registry.roll_back(model.version, "oops")

    assert registry.champion().version == model.version
    assert len(_history_rows(db)) == 1


def test_roll_back_to_an_unknown_version_fails_clearly(
    registry: ModelRegistry, candidates: tuple[Candidate, Candidate], db: Database
) -> None:
    model = _register(registry, candidates[0])
    registry.promote(model.version, None, "no champion yet")

    with pytest.raises(KeyError, match=r"no model version 'ctr-nope'.*models list"):
        registry.roll_back("ctr-nope", "typo")

    assert registry.champion().version == model.version
    assert len(_history_rows(db)) == 1


class _DatabaseThatDies:
    """Stands in for the database when the process dies before the version row is written."""

    def connect(self):
        raise RuntimeError("killed before the version row was written")


class _KilledAfterPromotionInsert(psycopg2.extensions.cursor):
    """Runs each statement; right after the one that inserts the champion row, the server
    process serving this session is terminated (a real kill, from another session), so the
    transaction dies between its INSERT and its COMMIT."""

    def execute(self, query, vars=None):
        super().execute(query, vars)
        if str(query).lstrip().startswith("INSERT INTO champion_history"):
            pid = self.connection.info.backend_pid
            with psycopg2.connect(self.connection.dsn) as killer, killer.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
                assert cur.fetchone()[0], f"backend {pid} was not terminated"


@dataclass(frozen=True)
class _DatabaseKilledMidPromotion(Database):
    @contextmanager
    def connect(self) -> Iterator[psycopg2.extensions.connection]:
        with super().connect() as conn:
            conn.cursor_factory = _KilledAfterPromotionInsert
            yield conn


def test_a_crash_inside_the_promotion_leaves_the_old_champion_serving(
    registry: ModelRegistry,
    candidates: tuple[Candidate, Candidate],
    frame: pd.DataFrame,
    db: Database,
) -> None:
    old_candidate, new_candidate = candidates
    old = _register(registry, old_candidate)
    registry.promote(old.version, None, "no champion yet")
    new = _register(registry, new_candidate, minutes=1)
    dying = ModelRegistry(_DatabaseKilledMidPromotion(db.url), registry.directory)

    try:
        dying.promote(new.version, old.version, "better on the hold-out")
        killed = None
    except psycopg2.OperationalError as error:
        killed = error

    champion = registry.champion()
    assert champion is not None
    assert champion.version == old.version
    assert _history_rows(db) == [(old.version, None, "promoted", "no champion yet")]
    assert killed is not None, "the promotion returned as if it had succeeded"
    assert "terminat" in str(killed) or "closed" in str(killed)
    np.testing.assert_array_equal(
        predict_ctr(registry.load(champion), frame),
        predict_ctr(old_candidate.trained.booster, frame),
    )
    # Nothing is left locked or half-done: the next promotion goes through.
    registry.promote(new.version, old.version, "better on the hold-out, second attempt")
    assert registry.champion().version == new.version


def test_a_crash_before_the_version_row_leaves_the_old_champion_serving(
    registry: ModelRegistry, candidates: tuple[Candidate, Candidate], frame: pd.DataFrame
) -> None:
    old_candidate, new_candidate = candidates
    old = _register(registry, old_candidate)
    registry.promote(old.version, None, "no champion yet")
    dying = ModelRegistry(_DatabaseThatDies(), registry.directory)  # type: ignore[arg-type]

    with pytest.raises(RuntimeError, match="killed"):
        _register(dying, new_candidate, minutes=1)

    champion = registry.champion()
    assert champion is not None
    assert champion.version == old.version
    assert [h.version for h in registry.history()] == [old.version]
    np.testing.assert_array_equal(
        predict_ctr(registry.load(champion), frame),
        predict_ctr(old_candidate.trained.booster, frame),
    )
    assert len(list(registry.directory.glob("*.json"))) == 2  # the orphan file is harmless
    assert [v.version for v in registry.versions()] == [old.version]


def _change_a_byte(path: Path, other: Path) -> None:
    content = path.read_bytes()
    path.write_bytes(content.replace(b"learner", b"learnxr", 1))


def _truncate(path: Path, other: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _swap_for_another_model(path: Path, other: Path) -> None:
    shutil.copyfile(other, path)


def _delete(path: Path, other: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(
    ("alter", "message"),
    [
        (_change_a_byte, "was changed or replaced"),
        (_truncate, "was changed or replaced"),
        (_swap_for_another_model, "was changed or replaced"),
        (_delete, "does not exist"),
    ],
    ids=["byte_changed", "truncated", "swapped", "deleted"],
)
def test_load_refuses_a_model_file_altered_on_disk(
    registry: ModelRegistry, candidates: tuple[Candidate, Candidate], alter, message: str
) -> None:
    model = _register(registry, candidates[0])
    other = _register(registry, candidates[1], minutes=1)
    registry.load(model)  # intact: loads

    alter(Path(model.file_path), Path(other.file_path))

    with pytest.raises(ModelFileError, match=message) as raised:
        registry.load(registry.get(model.version))
    assert model.file_path in str(raised.value)
    registry.load(other)  # the other version is untouched
