"""Training: the product's `train_ctr_model` against bare `xgboost.train`.

All variants fit the same loaded frame with the default `TrainingParams` and the weights
(impressions times recency) a check as of the world's end would use, on the same training
rows (the product's own split, computed once outside the timing for the bare variants):

- `train_ctr_model` (measured): the split, the feature checks, two QuantileDMatrix,
  boosting with early stopping on the validation slice, the booster cut at its best round.
- `bare quantile + early stopping` (reference): the same, by hand. Target: the product
  takes at most 1.1x of this.
- `bare dmatrix + early stopping`, `bare quantile, no early stopping` and
  `bare dmatrix, no early stopping` (all rounds, no validation set): what those two
  choices cost.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import xgboost as xgb

from bench.databases import WORLD_END
from bench.harness import Stats, interleaved, stats_of, with_seconds
from bench.report import target
from ctr_assets.data.features import FEATURES, TARGET
from ctr_assets.data.training_frame import load_training_frame
from ctr_assets.db.connection import Database
from ctr_assets.ml.split import TrainingSplit, training_split
from ctr_assets.ml.training import TrainingParams, train_ctr_model
from ctr_assets.ml.weights import video_weights

OVERHEAD_TARGET = 1.1
PRODUCT = "train_ctr_model"
REFERENCE = "bare quantile + early stopping"
VARIANTS = {
    REFERENCE: ("quantile", True),
    "bare dmatrix + early stopping": ("dmatrix", True),
    "bare quantile, no early stopping": ("quantile", False),
    "bare dmatrix, no early stopping": ("dmatrix", False),
}


def bare_train(
    frame: pd.DataFrame,
    weights: np.ndarray,
    split: TrainingSplit,
    params: TrainingParams,
    matrix: str,
    early_stopping: bool,
) -> xgb.Booster:
    """`xgboost.train` on the product's training rows, matrices built by hand."""
    make = xgb.QuantileDMatrix if matrix == "quantile" else xgb.DMatrix
    features = frame[list(FEATURES)]
    labels = frame[TARGET].to_numpy()

    def matrix_of(rows: np.ndarray, **extra) -> xgb.DMatrix:
        return make(
            features[rows],
            label=labels[rows],
            weight=weights[rows],
            enable_categorical=True,
            nthread=params.threads(),
            **extra,
        )

    train = matrix_of(split.training)
    if not early_stopping:
        return xgb.train(params.xgb_params(), train, num_boost_round=params.num_boost_round)
    validation = matrix_of(split.validation, **({"ref": train} if matrix == "quantile" else {}))
    return xgb.train(
        params.xgb_params(),
        train,
        num_boost_round=params.num_boost_round,
        evals=[(validation, "validation")],
        early_stopping_rounds=params.early_stopping_rounds,
        verbose_eval=False,
    )


def run_training_bench(db: Database, videos: int, repeats: int) -> dict:
    frame = load_training_frame(db).frame
    params = TrainingParams()
    weights = video_weights(frame, WORLD_END, 2.0)
    split = training_split(frame["video_id"], params.validation_fraction)
    boosters: dict[str, xgb.Booster] = {}

    def product() -> dict:
        trained = train_ctr_model(frame, params, weights)
        boosters[PRODUCT] = trained.booster
        return {"rounds": trained.best_iteration + 1}

    def bare(name: str, matrix: str, early_stopping: bool) -> Callable[[], dict]:
        def run() -> dict:
            booster = bare_train(frame, weights, split, params, matrix, early_stopping)
            boosters[name] = booster
            best = getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1)
            return {"rounds": int(best) + 1}

        return run

    cases = {PRODUCT: product} | {
        name: bare(name, matrix, stopping) for name, (matrix, stopping) in VARIANTS.items()
    }

    samples = interleaved({name: with_seconds(run) for name, run in cases.items()}, repeats)
    seconds = {name: stats_of(runs, "seconds") for name, runs in samples.items()}
    reference = boosters[REFERENCE]
    reference = reference[: reference.best_iteration + 1]
    probe = xgb.DMatrix(frame[list(FEATURES)].iloc[:1000], enable_categorical=True)
    same_model = bool(np.array_equal(boosters[PRODUCT].predict(probe), reference.predict(probe)))
    return {
        "videos": videos,
        "frame_rows": len(frame),
        "training_rows": int(split.training.sum()),
        "validation_rows": int(split.validation.sum()),
        "params": params.xgb_params() | {"num_boost_round": params.num_boost_round},
        "variants": {
            name: {
                "seconds": seconds[name].as_dict(),
                "rounds": samples[name][0]["rounds"],
                "ratio_to_reference": seconds[name].median / seconds[REFERENCE].median,
            }
            for name in cases
        },
        "overhead_ratio": seconds[PRODUCT].median / seconds[REFERENCE].median,
        "product_model_equals_reference": same_model,
        "samples": samples,
    }


def targets(result: dict) -> list[dict]:
    return [
        target(
            f"training: train_ctr_model within {OVERHEAD_TARGET}x of bare xgboost",
            result["overhead_ratio"],
            OVERHEAD_TARGET,
        )
    ]


def table_rows(result: dict) -> list[list[str]]:
    lines = []
    for name, figures in result["variants"].items():
        s = Stats(**figures["seconds"])
        lines.append(
            [
                name,
                f"{s.median:.2f}",
                f"{s.min:.2f}",
                f"{s.max:.2f}",
                str(figures["rounds"]),
                f"{figures['ratio_to_reference']:.3f}",
            ]
        )
    return lines


def figures(result: dict) -> dict[str, float]:
    found = {"training/overhead_ratio": result["overhead_ratio"]}
    for name, data in result["variants"].items():
        for stat in ("median", "min", "max"):
            found[f"training/{name}/seconds/{stat}"] = data["seconds"][stat]
        found[f"training/{name}/rounds"] = data["rounds"]
    return found
