"""Model versions and the champion.

A model file is written (XGBoost JSON, fsynced, renamed into place) and registered with
its checksum before anyone may serve it. The champion is the newest row of
`champion_history`: promotion and rollback each insert one row under a lock, after
checking that the champion is still the one the caller compared against and that the
version's file matches its checksum. A crash at any point before that insert leaves the
old champion serving; an orphan file is harmless. A champion whose file was damaged
afterwards is refused with the way out: the most recent earlier champion that verifies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import xgboost as xgb

from ctr_assets.db.connection import Database
from ctr_assets.faults import pause_point
from ctr_assets.ml.evaluation import HoldoutScore
from ctr_assets.ml.model_files import (
    DamagedChampionError,
    ModelFileError,
    load_model,
    new_version,
    save_model,
    verify_model_file,
)
from ctr_assets.ml.training import TrainedModel

_CHAMPION_LOCK = 7_316_004_212


class ChampionChangedError(RuntimeError):
    """Another check promoted or rolled back while this one was comparing."""


@dataclass(frozen=True)
class ModelVersion:
    version: str
    created_at: datetime
    file_path: str
    sha256: str
    training_rows: int
    holdout_rows: int
    holdout_mae: float | None
    holdout_r2: float | None
    params: dict[str, Any]
    training_seconds: float | None


@dataclass(frozen=True)
class ChampionChange:
    version: str
    previous_version: str | None
    changed_at: datetime
    action: str
    reason: str


_COLUMNS = (
    "version, created_at, file_path, sha256, training_rows, holdout_rows, holdout_mae, "
    "holdout_r2, params, training_seconds"
)


class RegistryMirror(Protocol):
    """Another registry that follows this one (MLflow: `ctr_assets.models.mlflow_mirror`)."""

    def sync(
        self, registry: ModelRegistry, records: Mapping[str, Mapping[str, Any]] | None = None
    ) -> Any: ...


class ModelRegistry:
    """Model files under `directory`, their records in `db`; `mirror`, if any, follows."""

    def __init__(self, db: Database, directory: Path, mirror: RegistryMirror | None = None) -> None:
        self.db = db
        self.directory = directory
        self.mirror = mirror

    def sync_mirror(
        self, records: Mapping[str, Mapping[str, Any]] | None = None
    ) -> dict[str, Any] | None:
        """Brings the mirror up to date with every version and the champion; what it did
        (or why it failed) as a dict, None without a mirror. Never raises: the mirror
        follows, it does not decide."""
        if self.mirror is None:
            return None
        return self.mirror.sync(self, records).as_dict()

    def champion(self) -> ModelVersion | None:
        with self.db.connect() as conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT {_COLUMNS} FROM model_versions WHERE version = "
                "(SELECT version FROM champion_history ORDER BY id DESC LIMIT 1)"
            )
            row = cur.fetchone()
        return ModelVersion(*row) if row else None

    def champion_at(self, moment: datetime) -> str | None:
        """The version that was champion at `moment` (None if there was none yet)."""
        with self.db.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT version FROM champion_history WHERE changed_at <= %s "
                "ORDER BY id DESC LIMIT 1",
                (moment,),
            )
            row = cur.fetchone()
        return row[0] if row else None

    def versions_created(self, start: datetime, end: datetime) -> list[ModelVersion]:
        """The versions registered between `start` and `end`, oldest first."""
        with self.db.connect() as conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT {_COLUMNS} FROM model_versions WHERE created_at BETWEEN %s AND %s "
                "ORDER BY created_at, version",
                (start, end),
            )
            return [ModelVersion(*row) for row in cur.fetchall()]

    def get(self, version: str) -> ModelVersion:
        with self.db.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM model_versions WHERE version = %s", (version,))
            row = cur.fetchone()
        if row is None:
            raise KeyError(f"no model version {version!r}; `ctr-assets models list` shows them")
        return ModelVersion(*row)

    def versions(self) -> list[ModelVersion]:
        with self.db.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM model_versions ORDER BY created_at, version")
            return [ModelVersion(*row) for row in cur.fetchall()]

    def history(self) -> list[ChampionChange]:
        with self.db.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT version, previous_version, changed_at, action, reason "
                "FROM champion_history ORDER BY id"
            )
            return [ChampionChange(*row) for row in cur.fetchall()]

    def load(self, model: ModelVersion) -> xgb.Booster:
        return load_model(Path(model.file_path), model.sha256)

    def verify(self, model: ModelVersion) -> None:
        """Raises `ModelFileError` unless the model's file is the one that was saved."""
        verify_model_file(Path(model.file_path), model.sha256)

    def load_champion(self, champion: ModelVersion) -> xgb.Booster:
        """The champion's booster; a damaged file raises with the way out in words."""
        try:
            return self.load(champion)
        except ModelFileError as error:
            raise self._damaged(champion, error) from error

    def verify_champion(self, champion: ModelVersion) -> None:
        """Like `load_champion`, without parsing the model."""
        try:
            self.verify(champion)
        except ModelFileError as error:
            raise self._damaged(champion, error) from error

    def intact_earlier_champion(self, champion: ModelVersion) -> ModelVersion | None:
        """The most recent other champion whose file verifies: where a rollback can go."""
        seen = {champion.version}
        for change in reversed(self.history()):
            if change.version in seen:
                continue
            seen.add(change.version)
            candidate = self.get(change.version)
            try:
                self.verify(candidate)
            except ModelFileError:
                continue
            return candidate
        return None

    def _damaged(self, champion: ModelVersion, error: ModelFileError) -> DamagedChampionError:
        earlier = self.intact_earlier_champion(champion)
        way_out = (
            f"`ctr-assets models rollback {earlier.version}` makes the most recent earlier "
            "champion whose file verifies serve again"
            if earlier
            else f"no earlier champion's file verifies: restore {champion.file_path} from a backup"
        )
        return DamagedChampionError(
            f"the champion {champion.version} cannot be used: {error}; {way_out}"
        )

    def register(
        self,
        trained: TrainedModel,
        score: HoldoutScore,
        params: dict[str, Any],
        now: datetime,
    ) -> ModelVersion:
        """Saves the file, then records the version (not yet champion)."""
        version = new_version(now)
        saved = save_model(trained.booster, self.directory, version)
        with self.db.connect() as conn, conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO model_versions ({_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                f"RETURNING {_COLUMNS}",
                (
                    version,
                    now,
                    str(saved.path),
                    saved.sha256,
                    trained.training_rows,
                    score.rows,
                    score.mae,
                    score.r2,
                    json.dumps(params),
                    trained.training_seconds,
                ),
            )
            return ModelVersion(*cur.fetchone())

    def promote(self, version: str, expected_champion: str | None, reason: str) -> None:
        """Makes `version` the champion if the champion is still `expected_champion`."""
        pause_point("before_promotion")
        self._change(version, expected_champion, "promoted", reason)
        pause_point("after_promotion")

    def roll_back(self, version: str, reason: str) -> str | None:
        """Makes an earlier version the champion again; returns the one it replaced."""
        self.get(version)  # a clear error for an unknown version
        if version not in {change.version for change in self.history()}:
            raise ValueError(
                f"{version} was never champion (a rejected challenger?); only earlier "
                "champions can be rolled back to"
            )
        current = self.champion()
        previous = current.version if current else None
        if previous == version:
            raise ValueError(f"{version} is already the champion")
        self._change(version, previous, "rolled_back", reason)
        return previous

    def _change(self, version: str, expected: str | None, action: str, reason: str) -> None:
        # No champion_history row may point at a file that fails its checksum.
        self.verify(self.get(version))
        with self.db.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_CHAMPION_LOCK,))
            cur.execute("SELECT version FROM champion_history ORDER BY id DESC LIMIT 1")
            row = cur.fetchone()
            current = row[0] if row else None
            if current != expected:
                raise ChampionChangedError(
                    f"the champion is now {current}, not {expected} as when this check "
                    f"compared; {version} was not made champion. Run the check again."
                )
            cur.execute(
                "INSERT INTO champion_history (version, previous_version, action, reason) "
                "VALUES (%s, %s, %s, %s)",
                (version, current, action, reason),
            )
