"""Resources: the database, the model store, the retrain policy operators tune, and the
cluster training may run on."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from ctr_assets import settings
from ctr_assets.cluster.client import ClusterSettings
from ctr_assets.cluster.training import ClusterSource
from ctr_assets.data.accuracy import Maturity
from ctr_assets.data.training_frame import RowSelection
from ctr_assets.db.connection import Database, libpq_url
from ctr_assets.db.schema import migrate
from ctr_assets.ml.decision import RetrainPolicy
from ctr_assets.ml.promotion import PromotionPolicy
from ctr_assets.ml.recency import horizon_days
from ctr_assets.ml.training import MIN_TRAINING_ROWS, TrainingParams
from ctr_assets.models.mlflow_mirror import MlflowMirror
from ctr_assets.models.registry import ModelRegistry
from ctr_assets.retraining.check import CheckSettings
from ctr_assets.retraining.training_set import InProcessSource, TrainingSource

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

    mlflow_tracking_uri: str | None = Field(
        default=None,
        repr=False,  # may carry credentials
        description=(
            "MLflow tracking server the registry is mirrored to (every challenger logged and "
            "registered, alias `champion` following promotions and rollbacks). Unset: "
            "MLFLOW_TRACKING_URI, or no mirror."
        ),
    )

    def registry(self, db: Database) -> ModelRegistry:
        folder = Path(self.directory) if self.directory else settings.ctr_home() / "models"
        return ModelRegistry(db, folder, MlflowMirror.from_environment(self.mlflow_tracking_uri))


_POLICY = RetrainPolicy()
_PROMOTION = PromotionPolicy()
_MATURITY = Maturity()


class RetrainSettings(dg.ConfigurableResource):
    """When to retrain, what to learn from, and when a challenger may replace the champion;
    shared by assets, checks and sensors."""

    mae_threshold: float = Field(
        default=_POLICY.mae_threshold,
        description="Retrain when the champion's true MAE of CTR exceeds this.",
    )
    min_samples: int = Field(
        default=_POLICY.min_samples,
        description="Mature resolved predictions needed before the accuracy is judged.",
    )
    lookback_days: int = Field(
        default=7, description="Days of resolved predictions the accuracy is measured over."
    )
    gate: Literal["noise_aware", "naive"] = Field(
        default=_POLICY.gate,
        description=(
            "noise_aware: retrain when the confidence bound of the true MAE (label noise "
            "taken out) is above the threshold, or the CUSUM of recent days alarms. naive: "
            "the original rule, observed MAE above the threshold."
        ),
    )
    confidence: float = Field(
        default=_POLICY.confidence,
        description="One-sided confidence of the noise-aware gate's lower bound.",
    )
    dispersion: float | None = Field(
        default=_POLICY.dispersion,
        description=("Over-dispersion of clicks (1: binomial). Unset: estimated from each window."),
    )
    cusum: bool = Field(
        default=_POLICY.cusum,
        description="Also retrain when the CUSUM of daily excess errors alarms (fast drift).",
    )
    cusum_k: float = Field(
        default=_POLICY.cusum_k, description="CUSUM reference value, in standard errors."
    )
    cusum_h: float = Field(
        default=_POLICY.cusum_h, description="CUSUM alarm limit, in standard errors."
    )
    cusum_days: int = Field(
        default=_POLICY.cusum_days, description="Days of outcomes the CUSUM looks back over."
    )
    min_outcome_impressions: int = Field(
        default=_MATURITY.min_impressions,
        description="An outcome is judged once it has this many impressions (else immature).",
    )
    min_outcome_age_hours: float = Field(
        default=_MATURITY.min_age_hours,
        description="An outcome is judged once its prediction is this many hours old.",
    )
    promotion_confidence: float = Field(
        default=_PROMOTION.confidence,
        description="Confidence of the paired hold-out comparison that promotes a challenger.",
    )
    min_improvement: float = Field(
        default=_PROMOTION.min_improvement,
        description=(
            "The challenger's advantage (its lower bound) must exceed this share of the "
            "champion's hold-out MAE."
        ),
    )
    slice_tolerance: float = Field(
        default=_PROMOTION.slice_tolerance,
        description=(
            "A platform (or ROAS) clearly worse by more than this share of the champion's "
            "MAE there rejects the challenger."
        ),
    )
    slice_min_rows: int = Field(
        default=_PROMOTION.slice_min_rows,
        description="Hold-out videos a platform needs to be judged as a slice.",
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
    recency_horizon_half_lives: float | None = Field(
        default=CheckSettings.recency_horizon_half_lives,
        description=(
            "Videos created more than this many half-lives before the newest one (7: 14 days "
            "at a 2-day half-life, a weight under 1/128 of the newest's) are not read: "
            "neither trained on nor judged on. 0 or unset: every video is read."
        ),
    )
    impression_weighting: bool = Field(
        default=CheckSettings.impression_weighting,
        description=(
            "Training and hold-out weights also grow with a video's impressions (capped at "
            "their 99th percentile): the logistic loss becomes the clicks' binomial "
            "likelihood. Off by default: see the README's 'Impression weights'."
        ),
    )

    def policy(self) -> RetrainPolicy:
        return RetrainPolicy(
            mae_threshold=self.mae_threshold,
            min_samples=self.min_samples,
            gate=self.gate,
            confidence=self.confidence,
            dispersion=self.dispersion,
            cusum=self.cusum,
            cusum_k=self.cusum_k,
            cusum_h=self.cusum_h,
            cusum_days=self.cusum_days,
        )

    def maturity(self) -> Maturity:
        return Maturity(self.min_outcome_impressions, self.min_outcome_age_hours)

    def check_settings(self, training: TrainingParams) -> CheckSettings:
        return CheckSettings(
            policy=self.policy(),
            promotion=PromotionPolicy(
                confidence=self.promotion_confidence,
                min_improvement=self.min_improvement,
                slice_tolerance=self.slice_tolerance,
                slice_min_rows=self.slice_min_rows,
            ),
            maturity=self.maturity(),
            lookback_days=self.lookback_days,
            min_training_rows=self.min_training_rows,
            recency_half_life_days=self.recency_half_life_days,
            recency_horizon_half_lives=self.recency_horizon_half_lives,
            impression_weighting=self.impression_weighting,
            training=training,
        )

    def row_selection(self) -> RowSelection:
        """The videos the training read selects."""
        return RowSelection(
            self.min_impressions,
            horizon_days(self.recency_half_life_days, self.recency_horizon_half_lives),
        )


SCHEDULER_ADDRESS_VARIABLE = "CTR_DASK_SCHEDULER_ADDRESS"


class TrainingCluster(dg.ConfigurableResource):
    """Where the training data is read and the challenger trained: in this process (the
    default), or on a Dask cluster through xgboost.dask, its workers reading `videos` in
    partitions of one PostgreSQL snapshot."""

    scheduler_address: str | None = Field(
        default=None,
        description=(
            "Address of a Dask scheduler (tcp://host:8786): dask-kubernetes, dask-gateway, a "
            "managed service or a LocalCluster. Unset: CTR_DASK_SCHEDULER_ADDRESS, and when "
            "that is unset too, in this process."
        ),
    )
    min_workers: int = Field(
        default=1, ge=1, description="Workers that must have joined before reading starts."
    )
    worker_wait_seconds: float = Field(
        default=120.0,
        gt=0,
        description="How long to wait for the scheduler to answer and the workers to join.",
    )
    timeout_seconds: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "Longest the read, or the training with its hold-out predictions, may take on the "
            "cluster before the check fails (the champion unchanged)."
        ),
    )
    partitions_per_worker: int = Field(
        default=2,
        ge=1,
        le=4,
        description=(
            "Block ranges of `videos` each worker reads (at most half the server's free "
            "connections in all)."
        ),
    )

    def address(self) -> str | None:
        """The scheduler to use, or None for in-process training (read at run time)."""
        return self.scheduler_address or os.environ.get(SCHEDULER_ADDRESS_VARIABLE) or None

    def cluster_settings(self, address: str) -> ClusterSettings:
        return ClusterSettings(
            address=address,
            min_workers=self.min_workers,
            worker_wait_seconds=self.worker_wait_seconds,
            timeout_seconds=self.timeout_seconds,
            partitions_per_worker=self.partitions_per_worker,
        )

    @contextlib.contextmanager
    def source(
        self, db: Database, rows: RowSelection, bad_rows: dict[str, int]
    ) -> Iterator[TrainingSource]:
        """Where the training step reads its rows; a cluster's client is open meanwhile."""
        address = self.address()
        if address is None:
            yield InProcessSource(db, rows, bad_rows)
            return
        source = ClusterSource(self.cluster_settings(address), db, rows, bad_rows)
        try:
            yield source
        finally:
            source.close()
