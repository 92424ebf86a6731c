"""Impression weights against equal weights: hold-out MAE against the true CTR.

    .venv/bin/python -m bench.impression_weights [--seeds 5] [--videos 30000]

For each world (the demo world, and the same world buying 5% of the impressions, where most
videos have a few hundred) and each seed, one training frame is simulated in memory
(`bench.simulated_frames`) and two models are trained on it with the product's default
`TrainingParams`: videos weighted by recency alone (before) and by impressions (capped at
the 99th percentile) times recency (after, the default). Both are scored on the same
hold-out videos against the simulator's true CTR: per video (each video counts once) and
per impression (each video counts its impressions: the traffic the predictions serve).
Writes `bench/results/impression_weights.json`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.report import table, write_json
from bench.simulated_frames import simulated_frame
from ctr_assets.ml.evaluation import predict_ctr, take_holdout
from ctr_assets.ml.training import TrainingParams, train_ctr_model
from ctr_assets.ml.weights import video_weights
from ctr_assets.simulation.world import WorldSpec

RESULTS = Path(__file__).resolve().parent / "results" / "impression_weights.json"
WORLDS = {"demo world": 1.0, "low-impression world (5% of the impressions)": 0.05}
HALF_LIFE_DAYS = 2.0
END = datetime(2026, 11, 1, tzinfo=UTC)


def compare(spec: WorldSpec, impression_scale: float, params: TrainingParams) -> dict:
    simulated = simulated_frame(spec, impression_scale)
    frame = simulated.frame
    holdout = take_holdout(frame)
    truth = simulated.true_ctr[holdout.positions]
    impressions = holdout.column(frame, "impressions").astype(np.float64)
    result = {
        "rows": len(frame),
        "holdout_rows": len(holdout),
        "median_impressions": float(np.median(frame["impressions"])),
    }
    for name, by_impressions in (("equal", False), ("impressions", True)):
        weights = video_weights(frame, spec.end, HALF_LIFE_DAYS, by_impressions=by_impressions)
        trained = train_ctr_model(frame, params, weights)
        error = np.abs(predict_ctr(trained.booster, holdout.features) - truth)
        result[name] = {
            "mae_true_per_video": float(error.mean()),
            "mae_true_per_impression": float(np.average(error, weights=impressions)),
            "best_iteration": trained.best_iteration,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.impression_weights")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--videos", type=int, default=30_000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args(argv)
    params = TrainingParams()
    runs: dict[str, list[dict]] = {world: [] for world in WORLDS}
    for world, scale in WORLDS.items():
        for seed in range(1, args.seeds + 1):
            spec = WorldSpec(seed=seed, days=args.days, videos=args.videos, end=END)
            runs[world].append({"seed": seed, **compare(spec, scale, params)})
            print(f"{world}, seed {seed}: done", file=sys.stderr, flush=True)
    rows, summary = [], {}
    for world, results in runs.items():
        for per in ("per_video", "per_impression"):
            before = [r["equal"][f"mae_true_{per}"] for r in results]
            after = [r["impressions"][f"mae_true_{per}"] for r in results]
            ratios = [a / b for a, b in zip(after, before, strict=True)]
            better = sum(a < b for a, b in zip(after, before, strict=True))
            summary[f"{world} / {per}"] = {
                "before_median": statistics.median(before),
                "after_median": statistics.median(after),
                "ratio_median": statistics.median(ratios),
                "ratio_max": max(ratios),
                "seeds_better": better,
                "seeds": len(results),
            }
            rows.append(
                [
                    f"{world}, {per.replace('_', ' ')}",
                    f"{statistics.median(before):.5f}",
                    f"{statistics.median(after):.5f}",
                    f"{statistics.median(ratios):.3f}",
                    f"{max(ratios):.3f}",
                    f"{better}/{len(results)}",
                ]
            )
    print(
        table(
            f"Hold-out MAE against the true CTR, {args.seeds} seeds, {args.videos:,} videos over "
            f"{args.days} days (median over seeds)",
            ["world, error counted", "equal", "impressions", "ratio", "worst ratio", "better"],
            rows,
        )
    )
    write_json(
        {
            "videos": args.videos,
            "days": args.days,
            "params": params.xgb_params(),
            "summary": summary,
            "runs": runs,
        },
        RESULTS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
