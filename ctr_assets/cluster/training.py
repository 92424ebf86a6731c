"""Reading and training on a Dask cluster.

The coordinator (the Dagster step) never holds the frame: it exports one snapshot, the
workers read their block ranges of `videos` with the same loader and screening as the
in-process path (`load_training_frame`), and the partitions stay in the workers' memory.
XGBoost trains on them with `xgboost.dask` (a `DaskQuantileDMatrix` for the training rows,
another for the validation rows, early stopping on the latter). The hold-out is the same
hash of `video_id` as in process, applied per partition; the workers predict the hold-out
with the challenger and the champion, and only those predictions (a few numbers per
hold-out video) come back to the coordinator, which judges the promotion as usual.

Every wait has a deadline (`ctr_assets.cluster.client`).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xgboost as xgb

from ctr_assets.cluster.client import (
    ClusterSettings,
    cluster_client,
    current_workers,
    within_deadline,
)
from ctr_assets.cluster.snapshot import exported_snapshot, partition_count, table_parts
from ctr_assets.data.features import FEATURES, TARGET
from ctr_assets.data.training_frame import (
    RowSelection,
    TablePart,
    TrainingData,
    load_training_frame,
)
from ctr_assets.db.connection import Database
from ctr_assets.faults import pause_point
from ctr_assets.ml.split import holdout_mask, training_split
from ctr_assets.ml.training import TrainedModel, TrainingError, TrainingParams
from ctr_assets.ml.weights import Weighting, impression_cap, largest
from ctr_assets.retraining.training_set import FittedChallenger, holdout_predictions

if TYPE_CHECKING:  # distributed is imported when a cluster is used, not with the code location
    from distributed import Client, Future

logger = logging.getLogger(__name__)

_TRAINING, _VALIDATION, _HOLDOUT = 0, 1, 2


@dataclass(frozen=True)
class PartitionSummary:
    rows_read: int
    bad_rows: dict[str, int]
    rows: int
    usable_rows: int
    video_ids: int  # distinct within the partition


def _summary(data: TrainingData) -> PartitionSummary:
    frame = data.frame
    holdout = int(holdout_mask(frame["video_id"]).sum()) if len(frame) else 0
    return PartitionSummary(
        rows_read=data.rows_read,
        bad_rows=dict(data.bad_rows),
        rows=len(frame),
        usable_rows=len(frame) - holdout,
        video_ids=int(frame["video_id"].nunique()),
    )


@dataclass
class ClusterTrainingSet:
    """The training frame, in partitions held by the workers of `client`."""

    client: Client
    settings: ClusterSettings
    parts: list[Future]
    summaries: list[PartitionSummary]
    snapshot: str  # pg_current_snapshot() of the exported snapshot, for the record
    placement: dict[str, int] = field(default_factory=dict)  # worker -> partitions held

    @property
    def rows_read(self) -> int:
        return sum(s.rows_read for s in self.summaries)

    @property
    def bad_rows(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for summary in self.summaries:
            for reason, count in summary.bad_rows.items():
                total[reason] = total.get(reason, 0) + count
        return total

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.summaries)

    @property
    def usable_rows(self) -> int:
        return sum(s.usable_rows for s in self.summaries)

    def fit(
        self,
        params: TrainingParams,
        as_of: datetime,
        weighting: Weighting,
        champion: xgb.Booster | None,
    ) -> FittedChallenger:
        """Trains with `xgboost.dask` and predicts the hold-out on the workers."""

        def work() -> FittedChallenger:
            # xgboost.dask finds its client as the current one (in this thread).
            with self.client.as_current():
                return self._fit_here(params, as_of, weighting, champion)

        return within_deadline(
            self.client, self.settings, set(self.placement), "training on the Dask cluster", work
        )

    def _fit_here(
        self,
        params: TrainingParams,
        as_of: datetime,
        weighting: Weighting,
        champion: xgb.Booster | None,
    ) -> FittedChallenger:
        import dask.dataframe as dd
        from xgboost import dask as dxgb

        started = time.perf_counter()
        client = self.client
        scale = self.weight_scale(weighting, as_of)
        prepared = [
            client.submit(_model_rows, part, as_of, scale, params.validation_fraction, pure=False)
            for part in self.parts
        ]
        counts = pd.DataFrame(client.gather(client.map(_role_counts, prepared, pure=False)))
        training_rows, validation_rows = (
            int(counts[_TRAINING].sum()),
            int(counts[_VALIDATION].sum()),
        )
        if not training_rows or not validation_rows:
            raise ValueError(
                f"after setting aside the hold-out, {training_rows} training and "
                f"{validation_rows} validation rows remain out of {self.rows}; both must be "
                "non-empty, so load more videos before training"
            )
        meta = client.submit(_empty_like, prepared[0], pure=False).result()
        frame = dd.from_delayed(prepared, meta=meta, verify_meta=False)
        features = list(FEATURES)
        training = frame[frame["role"] == _TRAINING]
        validation = frame[frame["role"] == _VALIDATION]
        weighted = weighting.active
        train_matrix = dxgb.DaskQuantileDMatrix(
            client,
            training[features],
            training[TARGET],
            weight=training["weight"] if weighted else None,
            enable_categorical=True,
        )
        validation_matrix = dxgb.DaskQuantileDMatrix(
            client,
            validation[features],
            validation[TARGET],
            weight=validation["weight"] if weighted else None,
            enable_categorical=True,
            ref=train_matrix,
        )
        try:
            output = dxgb.train(
                client,
                # Each worker boosts with its own thread count, not the coordinator's
                # `nthread`: more threads than a worker's cores spin against each other.
                {k: v for k, v in params.xgb_params().items() if k != "nthread"},
                train_matrix,
                num_boost_round=params.num_boost_round,
                evals=[(validation_matrix, "validation")],
                early_stopping_rounds=params.early_stopping_rounds,
                verbose_eval=False,
                callbacks=[PausePoint()],
                # A worker waiting on a dead peer gives up, rather than hold its thread.
                coll_cfg=xgb.collective.Config(timeout=int(self.settings.timeout_seconds)),
            )
        except xgb.core.XGBoostError as error:
            message = " ".join(str(error).split("Stack trace:")[0].split())
            raise TrainingError(
                f"XGBoost failed to train on the cluster: {message} (check the XGBoost "
                "parameters and the workers' logs)"
            ) from error
        booster: xgb.Booster = output["booster"]
        best_iteration = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
        booster = booster[: best_iteration + 1]
        trained = TrainedModel(
            booster=booster,
            best_iteration=best_iteration,
            training_seconds=time.perf_counter() - started,
            training_rows=training_rows,
            validation_rows=validation_rows,
        )
        [challenger_on_workers] = client.scatter([booster], broadcast=True)
        champion_on_workers = (
            client.scatter([champion], broadcast=True)[0] if champion is not None else None
        )
        predicted = client.map(
            _holdout_rows,
            self.parts,
            as_of=as_of,
            scale=scale,
            challenger=challenger_on_workers,
            champion=champion_on_workers,
            pure=False,
        )
        holdout = pd.concat(client.gather(predicted), ignore_index=True)
        return FittedChallenger(trained, holdout)

    def weight_scale(self, weighting: Weighting, as_of: datetime) -> WeightScale:
        """The frame-wide figures every partition's weights need: the impressions' cap (from
        each partition's largest impressions) and the mean raw weight (from their sums)."""
        client, rows = self.client, self.rows
        cap = None
        if weighting.by_impressions and weighting.cap_quantile < 1.0:
            size = weighting.tail_size(rows)
            tails = client.gather(client.map(_impression_tail, self.parts, size=size, pure=False))
            cap = impression_cap(tails, rows, weighting.cap_quantile)
        mean = 1.0  # recency alone keeps its own scale (see `video_weights`)
        if weighting.by_impressions and rows:
            sums = client.gather(
                client.map(
                    _raw_weight_sum,
                    self.parts,
                    weighting=weighting,
                    as_of=as_of,
                    cap=cap,
                    pure=False,
                )
            )
            mean = sum(sums) / rows
        return WeightScale(weighting, cap, mean)

    def release(self) -> None:
        """Frees the partitions on the workers."""
        self.client.cancel(self.parts)


class ClusterSource:
    """Reads the training rows on the cluster's workers (see `read_on_cluster`), connecting
    only when asked to read; `close` lets the client go."""

    def __init__(
        self,
        settings: ClusterSettings,
        db: Database,
        rows: RowSelection,
        bad_rows: dict[str, int],
    ) -> None:
        self.settings = settings
        self.db = db
        self.rows = rows
        self.bad_rows = bad_rows
        self._open = contextlib.ExitStack()

    def read(self) -> ClusterTrainingSet:
        client = self._open.enter_context(cluster_client(self.settings))
        return read_on_cluster(client, self.settings, self.db, self.rows)

    def describe(self) -> ClusterTrainingSet:
        """Reads on the workers, then frees the partitions: what is left is the summaries."""
        rows = self.read()
        rows.release()
        return rows

    def close(self) -> None:
        self._open.close()


def read_on_cluster(
    client: Client, settings: ClusterSettings, db: Database, rows: RowSelection
) -> ClusterTrainingSet:
    """Reads `videos` on the workers, 2-4 block ranges each, all from one snapshot."""
    workers = sorted(current_workers(client))
    with exported_snapshot(db) as snapshot:
        parts = table_parts(
            snapshot,
            partition_count(
                len(workers), settings.partitions_per_worker, snapshot.free_connections
            ),
        )
        token = uuid.uuid4().hex[:8]
        futures = [
            client.submit(
                _read_part,
                db,
                rows,
                part,
                # Round-robin, so every worker reads (and later trains on) its share.
                workers=[workers[i % len(workers)]],
                allow_other_workers=False,
                pure=False,
                key=f"ctr-training-partition-{token}-{i}",
            )
            for i, part in enumerate(parts)
        ]
        # The exporting transaction stays open until every partition has been read.
        summaries = within_deadline(
            client,
            settings,
            set(workers),
            "reading the training data on the Dask cluster",
            lambda: client.gather(client.map(_summary, futures, pure=False)),
        )
    placement: dict[str, int] = {}
    for holders in client.who_has(futures).values():
        for worker in holders:
            placement[worker] = placement.get(worker, 0) + 1
    logger.info(
        "read %d partitions of videos on %d workers from snapshot %s",
        len(parts),
        len(placement),
        snapshot.visible,
    )
    return ClusterTrainingSet(client, settings, futures, summaries, snapshot.visible, placement)


def _read_part(db: Database, rows: RowSelection, part: TablePart) -> TrainingData:
    return load_training_frame(db, rows, part)


@dataclass(frozen=True)
class WeightScale:
    """A check's `Weighting` with the frame-wide figures it needs on each partition."""

    weighting: Weighting
    cap: float | None
    mean: float

    def of(self, frame: pd.DataFrame, as_of: datetime) -> np.ndarray | None:
        """The partition's weights, as `Weighting.of` gives them on the whole frame."""
        if not self.weighting.active:
            return None
        return self.weighting.raw(frame, as_of, self.cap) / self.mean


def _impression_tail(data: TrainingData, size: int) -> np.ndarray:
    return largest(data.frame["impressions"].to_numpy(), size)


def _raw_weight_sum(
    data: TrainingData, weighting: Weighting, as_of: datetime, cap: float | None
) -> float:
    return float(weighting.raw(data.frame, as_of, cap).sum())


def _model_rows(
    data: TrainingData, as_of: datetime, scale: WeightScale, validation_fraction: float
) -> pd.DataFrame:
    """The partition's features, target, weight and role (training, validation, hold-out),
    by the same rules as `train_ctr_model`."""
    frame = data.frame
    rows = frame.loc[:, [*FEATURES, TARGET]]
    weights = scale.of(frame, as_of)
    rows["weight"] = 1.0 if weights is None else weights
    role = pd.Series(_HOLDOUT, index=frame.index, dtype="int8")
    if len(frame):
        split = training_split(frame["video_id"], validation_fraction)
        role[split.training] = _TRAINING
        role[split.validation] = _VALIDATION
    rows["role"] = role
    return rows


def _role_counts(rows: pd.DataFrame) -> dict[int, int]:
    counts = rows["role"].value_counts()
    return {role: int(counts.get(role, 0)) for role in (_TRAINING, _VALIDATION, _HOLDOUT)}


def _empty_like(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.iloc[:0]


def _holdout_rows(
    data: TrainingData,
    *,
    as_of: datetime,
    scale: WeightScale,
    challenger: xgb.Booster,
    champion: xgb.Booster | None,
) -> pd.DataFrame:
    frame = data.frame
    return holdout_predictions(frame, scale.of(frame, as_of), challenger, champion)


class PausePoint(xgb.callback.TrainingCallback):
    """The fault point `training` on each worker, after the first boosting round: where a
    fault test kills a worker mid-fit (inert unless CTR_FAULT_POINTS is set there)."""

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if epoch == 0:
            pause_point("training")
        return False
