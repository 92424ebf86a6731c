"""Resources: the database, the model store, and the retrain policy operators tune."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from ctr_assets import settings
from ctr_assets.db.connection import Database, libpq_url
from ctr_assets.db.schema import migrate
from ctr_assets.ml.decision import RetrainPolicy
from ctr_assets.ml.training import MIN_TRAINING_ROWS
from ctr_assets.models.registry import ModelRegistry
from ctr_assets.retraining.check import CheckSettings

_migrated: set[str] = set()


class CtrDatabase(dg.ConfigurableResource):
    """The application database (PostgreSQL)."""

    url: str | None = Field(
        default=None,
        repr=False,  # may carry a password
        description=(
            "PostgreSQL URL of the application database. Unset: DATABASE_URL, or else the "
            "embedded server under CTR_HOME."
        ),
    )

    def open(self) -> Database:
        """The database, its schema brought up to date once per process."""
        db = Database(libpq_url(self.url)) if self.url else Database.from_environment()
        if db.url not in _migrated:
            migrate(db)
            _migrated.add(db.url)
        return db


class ModelStore(dg.ConfigurableResource):
    """Where model files live; their records live in the application database."""

    directory: str | None = Field(
        default=None, description="Folder for model files. Unset: CTR_HOME/models."
    )

    def registry(self, db: Database) -> ModelRegistry:
        folder = Path(self.directory) if self.directory else settings.ctr_home() / "models"
        return ModelRegistry(db, folder)


class RetrainSettings(dg.ConfigurableResource):
    """When to retrain and what to learn from; shared by assets, checks and sensors."""

    mae_threshold: float = Field(
        default=RetrainPolicy.mae_threshold,
        description="Retrain when the champion's live MAE of CTR exceeds this.",
    )
    min_samples: int = Field(
        default=RetrainPolicy.min_samples,
        description="Resolved predictions needed before the MAE is trusted.",
    )
    lookback_days: int = Field(
        default=7, description="Days of resolved predictions the accuracy is measured over."
    )
    min_training_rows: int = Field(
        default=MIN_TRAINING_ROWS,
        description="Usable training rows (outside the hold-out) needed to train.",
    )
    min_impressions: int = Field(
        default=100, description="A video needs this many impressions to be a training row."
    )
    recency_half_life_days: float | None = Field(
        default=CheckSettings.recency_half_life_days,
        description=(
            "Training and hold-out weights halve with every this many days of a video's age, "
            "so the model follows drift. 0 or unset: all videos weigh the same."
        ),
    )

    def policy(self) -> RetrainPolicy:
        return RetrainPolicy(mae_threshold=self.mae_threshold, min_samples=self.min_samples)
