"""Hold-out MAE against training time for the choices that matter, on the demo world.

    .venv/bin/python -m bench.defaults_curve [--videos 100000,1000000] [--repeats 2]

Each variant trains on the same frame (read once from `<prefix>_videos_<n>`, see
`bench.world_data`) with the weights a check as of the world's end uses (impressions
times recency), on the product's split, and is scored like a challenger: the weighted MAE
of its hold-out predictions against the observed CTR. Wall seconds are `train_ctr_model`'s
own (both matrices and the boosting), or, for the DMatrix variant, the same done by hand
with `xgboost.DMatrix`; CPU seconds (the process's, training and the hold-out prediction)
are what the plot shows, every variant on one thread unless named otherwise, because on a
machine shared with other work CPU time compares where wall time does not. Variants take
turns in rotating order (`bench.harness.interleaved`); the MAE of a seeded variant is the
same in every repetition. Prints one table per size, writes `bench/results/<name>.json`
and the plot `bench/results/<name>.png`.
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
from bench.training_bench import bare_train
from bench.world_data import videos_database
from ctr_assets.data.training_frame import load_training_frame
from ctr_assets.ml.evaluation import predict_ctr, take_holdout
from ctr_assets.ml.split import training_split
from ctr_assets.ml.training import TrainingParams, train_ctr_model
from ctr_assets.ml.weights import video_weights

RESULTS = Path(__file__).resolve().parent / "results"
BEFORE = TrainingParams(
    learning_rate=0.05, num_boost_round=600, max_depth=4, nthread=2, max_bin=256
)
_ONE = replace(BEFORE, nthread=1, num_boost_round=3000)  # one thread: CPU seconds compare


def _variant(**changes) -> TrainingParams:
    return replace(_ONE, **changes)


# name -> (params, matrix)
VARIANTS: dict[str, tuple[TrainingParams, str]] = {
    "before: depth 4, lr 0.05, 600 rounds, 2 threads": (BEFORE, "quantile"),
    "before, 1 thread": (replace(BEFORE, nthread=1), "quantile"),
    "before, 1 thread, DMatrix": (replace(BEFORE, nthread=1), "dmatrix"),
    "depth 4, lr 0.05": (_variant(), "quantile"),
    "depth 4, lr 0.1": (_variant(learning_rate=0.1), "quantile"),
    "depth 6, lr 0.05": (_variant(max_depth=6), "quantile"),
    "depth 3, lr 0.1": (_variant(max_depth=3, learning_rate=0.1), "quantile"),
    "depth 3, lr 0.2": (_variant(max_depth=3, learning_rate=0.2), "quantile"),
    "depth 3, lr 0.3": (_variant(max_depth=3, learning_rate=0.3), "quantile"),
    "depth 2, lr 0.2": (_variant(max_depth=2, learning_rate=0.2), "quantile"),
    "depth 3, lr 0.2, max_bin 64": (
        _variant(max_depth=3, learning_rate=0.2, max_bin=64),
        "quantile",
    ),
    "depth 3, lr 0.2, max_bin 128": (
        _variant(max_depth=3, learning_rate=0.2, max_bin=128),
        "quantile",
    ),
    "depth 3, lr 0.2, subsample 0.5": (
        _variant(max_depth=3, learning_rate=0.2, subsample=0.5),
        "quantile",
    ),
    "depth 3, lr 0.2, stop after 20": (
        _variant(max_depth=3, learning_rate=0.2, early_stopping_rounds=20),
        "quantile",
    ),
    "depth 3, lr 0.2, validation 5%": (
        _variant(max_depth=3, learning_rate=0.2, validation_fraction=0.05),
        "quantile",
    ),
    "defaults now (every core)": (TrainingParams(), "quantile"),
}


def measure_size(server: Server, videos: int, repeats: int, names: list[str]) -> dict:
    db = videos_database(server, videos, regenerate=False, log=lambda line: None)
    frame = load_training_frame(db).frame
    weights = video_weights(frame, WORLD_END, 2.0)
    holdout = take_holdout(frame, weights)

    def case(name: str):
        params, matrix = VARIANTS[name]

        def run() -> dict:
            cpu_started = time.process_time()
            if matrix == "dmatrix":
                split = training_split(frame["video_id"], params.validation_fraction)
                started = time.perf_counter()
                booster = bare_train(frame, weights, split, params, "dmatrix", True)
                seconds = time.perf_counter() - started
                best = int(booster.best_iteration)
                booster = booster[: best + 1]
            else:
                trained = train_ctr_model(frame, params, weights)
                booster = trained.booster
                seconds, best = trained.training_seconds, trained.best_iteration
            predicted = predict_ctr(booster, holdout.features)
            mae = float(np.average(np.abs(predicted - holdout.actual), weights=holdout.weights))
            cpu = time.process_time() - cpu_started  # includes the hold-out prediction
            return {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "holdout_mae": mae,
                "best_iteration": best,
            }

        return run

    samples = interleaved({name: case(name) for name in names}, repeats)
    variants = {}
    for name in names:
        params, matrix = VARIANTS[name]
        runs = samples[name]
        variants[name] = {
            "params": params.xgb_params() | {"num_boost_round": params.num_boost_round},
            "matrix": matrix,
            "seconds": stats_of(runs, "seconds").as_dict(),
            "cpu_seconds": stats_of(runs, "cpu_seconds").as_dict(),
            "holdout_mae": runs[0]["holdout_mae"],
            "best_iteration": runs[0]["best_iteration"],
        }
    return {"videos": videos, "frame_rows": len(frame), "variants": variants, "samples": samples}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(results["sizes"].values())
    figure, axes = plt.subplots(1, len(sizes), figsize=(6.5 * len(sizes), 5), squeeze=False)
    for axis, size in zip(axes[0], sizes, strict=True):
        for name, figures in size["variants"].items():
            seconds, mae = figures["cpu_seconds"]["median"], figures["holdout_mae"]
            special = {"before": ("s", "tab:red"), "defaults now": ("*", "tab:green")}
            marker, color = next(
                (style for key, style in special.items() if name.startswith(key)),
                ("o", "tab:blue"),
            )
            axis.scatter(seconds, mae, marker=marker, color=color, s=120 if marker != "o" else 40)
            axis.annotate(
                name, (seconds, mae), fontsize=7, xytext=(4, 3), textcoords="offset points"
            )
        axis.set_title(f"{size['videos']:,} videos ({size['frame_rows']:,} rows)")
        axis.set_xscale("log")  # the multi-threaded variants on a busy machine sit far right
        axis.set_xlabel("CPU seconds to train (median, log scale; one thread unless named)")
        axis.set_ylabel("hold-out MAE (weighted as promotion)")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.defaults_curve")
    parser.add_argument("--videos", default="100000,1000000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", default=None, help="comma-separated variant names")
    parser.add_argument("--admin-url", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--prefix", default="ctr_bench")
    parser.add_argument("--name", default="defaults_curve")
    args = parser.parse_args(argv)
    server = Server(args.admin_url, args.prefix)
    names = args.only.split(",") if args.only else list(VARIANTS)
    results: dict = {"sizes": {}}
    for videos in (int(v) for v in args.videos.split(",")):
        size = measure_size(server, videos, args.repeats, names)
        results["sizes"][str(videos)] = size
        rows = [
            [
                name,
                f"{figures['cpu_seconds']['median']:.2f}",
                f"{figures['seconds']['median']:.2f}",
                f"{figures['holdout_mae']:.6f}",
                str(figures["best_iteration"]),
            ]
            for name, figures in size["variants"].items()
        ]
        print(
            table(
                f"Training variants, {videos:,} videos ({size['frame_rows']:,} rows), "
                f"{args.repeats} repetitions interleaved",
                ["variant", "CPU s", "wall s", "hold-out MAE", "best round"],
                rows,
            ),
            flush=True,
        )
    write_json(results, RESULTS / f"{args.name}.json")
    plot(results, RESULTS / f"{args.name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
