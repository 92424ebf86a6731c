"""Hold-out MAE against wall time for cheaper training settings, as a check trains.

    .venv/bin/python -m bench.training_grid [--videos 1000000] [--repeats 1]

Where `bench.defaults_curve` compares CPU seconds on one thread (for a shared machine),
this runs each variant the way a check does, on a machine of its own: every core, the
default weighting (recency only), the product's split, `train_ctr_model` (matrices, the
boosting and its validation pass). Each variant's hold-out MAE is the promotion rule's
(weighted like training, against the observed CTR). The question it answers: does any
setting reach today's defaults' hold-out MAE in clearly less time? Variants take turns in
rotating order (`bench.harness.interleaved`); a seeded variant's MAE is the same in every
repetition. Writes `bench/results/training_grid.json`.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.databases import WORLD_END, Server
from bench.harness import interleaved, stats_of
from bench.report import table, write_json
from bench.world_data import videos_database
from ctr_assets.data.training_frame import load_training_frame
from ctr_assets.ml.evaluation import predict_ctr, take_holdout
from ctr_assets.ml.split import training_split
from ctr_assets.ml.training import TrainingParams, train_ctr_model
from ctr_assets.ml.weights import video_weights
from ctr_assets.retraining.check import CheckSettings

RESULTS = Path(__file__).resolve().parent / "results" / "training_grid.json"
DEFAULTS = TrainingParams()

VARIANTS: dict[str, TrainingParams] = {
    "defaults: depth 4, lr 0.05, 600 rounds": DEFAULTS,
    "400 rounds": replace(DEFAULTS, num_boost_round=400),
    "subsample 1.0": replace(DEFAULTS, subsample=1.0),
    "colsample 0.5": replace(DEFAULTS, colsample_bytree=0.5),
    "max_bin 64": replace(DEFAULTS, max_bin=64),
    "max_bin 128": replace(DEFAULTS, max_bin=128),
    "depth 3, lr 0.1, 600 rounds": replace(DEFAULTS, max_depth=3, learning_rate=0.1),
    "depth 3, lr 0.2, 400 rounds": replace(
        DEFAULTS, max_depth=3, learning_rate=0.2, num_boost_round=400
    ),
    "depth 3, lr 0.2, 300 rounds": replace(
        DEFAULTS, max_depth=3, learning_rate=0.2, num_boost_round=300
    ),
    "depth 4, lr 0.15, 250 rounds": replace(DEFAULTS, learning_rate=0.15, num_boost_round=250),
    "depth 5, lr 0.05, 400 rounds": replace(DEFAULTS, max_depth=5, num_boost_round=400),
    "depth 5, lr 0.1, 250 rounds": replace(
        DEFAULTS, max_depth=5, learning_rate=0.1, num_boost_round=250
    ),
    "depth 6, lr 0.1, 200 rounds": replace(
        DEFAULTS, max_depth=6, learning_rate=0.1, num_boost_round=200
    ),
    "depth 2, lr 0.3, 600 rounds": replace(DEFAULTS, max_depth=2, learning_rate=0.3),
}


def measure(server: Server, videos: int, repeats: int) -> dict:
    db = videos_database(server, videos, regenerate=False, log=lambda line: None)
    frame = load_training_frame(db).frame
    half_life = CheckSettings.recency_half_life_days  # a check's default weighting
    weights = video_weights(frame, WORLD_END, half_life, by_impressions=False)
    holdout = take_holdout(frame, weights)
    split = training_split(frame["video_id"], DEFAULTS.validation_fraction)

    def case(params: TrainingParams):
        def run() -> dict:
            cpu_started = time.process_time()
            trained = train_ctr_model(frame, params, weights, split=split)
            cpu = time.process_time() - cpu_started
            predicted = predict_ctr(trained.booster, holdout.features)
            error = np.abs(predicted - holdout.actual)
            return {
                "seconds": trained.training_seconds,
                "cpu_seconds": cpu,
                "holdout_mae": float(np.average(error, weights=holdout.weights)),
                "best_iteration": trained.best_iteration,
            }

        return run

    samples = interleaved({name: case(p) for name, p in VARIANTS.items()}, repeats)
    variants = {}
    for name, params in VARIANTS.items():
        runs = samples[name]
        variants[name] = {
            "params": params.as_dict(),
            "seconds": stats_of(runs, "seconds").as_dict(),
            "cpu_seconds": stats_of(runs, "cpu_seconds").as_dict(),
            "holdout_mae": runs[0]["holdout_mae"],
            "best_iteration": runs[0]["best_iteration"],
        }
    return {"videos": videos, "frame_rows": len(frame), "variants": variants}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.training_grid")
    parser.add_argument("--videos", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--admin-url", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--prefix", default="ctr_bench")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = measure(Server(args.admin_url, args.prefix), args.videos, args.repeats)
    base = result["variants"]["defaults: depth 4, lr 0.05, 600 rounds"]
    rows = []
    for name, figures in result["variants"].items():
        seconds = figures["seconds"]["median"]
        rows.append(
            [
                name,
                f"{seconds:.1f}",
                f"{seconds / base['seconds']['median']:.2f}",
                f"{figures['holdout_mae']:.6f}",
                f"{figures['holdout_mae'] / base['holdout_mae'] - 1:+.1%}",
                str(figures["best_iteration"]),
            ]
        )
    write_json(result, args.json)
    print(
        table(
            f"train_ctr_model at {args.videos:,} videos ({result['frame_rows']:,} rows), "
            f"every core, recency weights, {args.repeats} run(s) each",
            ["variant", "wall s", "x defaults", "hold-out MAE", "vs defaults", "best round"],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
