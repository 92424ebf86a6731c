"""The whole retrain, today's code against the code as it was at a reference commit, in
the same run.

    .venv/bin/python -m bench.retrain_versus [--videos 1000000,5000000] [--repeats 2]
        [--reference c266be7]

The reference is a `git worktree` of the reference commit (under `bench/.data/`), run by
the same interpreter with that tree first on `sys.path`, so its `ctr_assets` and its
`bench.retrain_bench:whole_retrain` task are imported instead of this tree's. Both do the
same thing on the same database: `run_check_in_process` on a stale champion, breach to
promoted challenger (`bench.retrain_bench`), each repetition in a fresh process (seconds
and peak RSS growth are its own), the two codes taking turns in rotating order, the stale
champion restored before each.

Both promoted models are then scored by this tree on the same hold-out videos and the same
weights, both ways: recency only (the reference's weighting) and impressions times recency
(this tree's), so their accuracy is compared on equal terms. The frame's size
(`memory_usage(deep=True)`) of every eligible video is the yardstick of peak memory; the
frame this tree's check reads (the videos within its recency horizon) is printed beside it. Writes
`bench/results/retrain_versus.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.databases import DATA_DIR, WORLD_END, Server, model_dir
from bench.harness import BenchError, interleaved, stats_of
from bench.report import table, write_json
from bench.retrain_bench import install_stale_champion, restore_champion
from bench.world_data import videos_database
from ctr_assets.data.training_frame import load_training_frame
from ctr_assets.ml.evaluation import predict_ctr, take_holdout
from ctr_assets.ml.weights import video_weights
from ctr_assets.models.registry import ModelRegistry
from ctr_assets.orchestration.resources import RetrainSettings

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS = REPOSITORY / "bench" / "results" / "retrain_versus.json"


def reference_tree(commit: str) -> Path:
    """A detached worktree of `commit`, made once."""
    path = DATA_DIR / f"reference-{commit}"
    if not (path / "ctr_assets").is_dir():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), commit],
            cwd=REPOSITORY,
            check=True,
            capture_output=True,
        )
    return path


def run_task(tree: Path, timeout_s: float = 3600, **kwargs) -> dict:
    """`bench.retrain_bench:whole_retrain` in a fresh interpreter importing `tree`'s code."""
    command = [
        sys.executable,
        "-m",
        "bench.fresh_process",
        "bench.retrain_bench:whole_retrain",
        json.dumps(kwargs),
    ]
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout_s, cwd=tree, env=environment
    )
    if done.returncode != 0:
        raise BenchError(f"whole retrain in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retrain_versus")
    parser.add_argument("--videos", default="1000000,5000000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--reference", default="c266be7")
    parser.add_argument("--admin-url", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--prefix", default="ctr_bench")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    server = Server(args.admin_url, args.prefix)
    trees = {"reference": reference_tree(args.reference), "now": REPOSITORY}
    results: dict = {"reference_commit": args.reference, "sizes": {}}
    for videos in (int(v) for v in args.videos.split(",")):
        db = videos_database(server, videos, regenerate=False, log=print)
        models = model_dir(f"{args.prefix}_videos_{videos}")
        stale = install_stale_champion(db, models, videos)
        promoted: dict[str, list[str]] = {name: [] for name in trees}

        def case(name: str, db=db, models=models, promoted=promoted):
            def run() -> dict:
                sample = run_task(
                    trees[name], url=db.url, model_dir=str(models), as_of=WORLD_END.isoformat()
                )
                champion = ModelRegistry(db, models).champion()
                promoted[name].append(champion.version)
                return sample

            return run

        def before_each(_name: str, db=db, models=models, stale=stale) -> None:
            restore_champion(db, models, stale)

        print(f"{videos:,} videos: measuring", file=sys.stderr, flush=True)
        samples = interleaved({n: case(n) for n in trees}, args.repeats, before_each)

        frame = load_training_frame(db).frame
        frame_bytes = int(frame.memory_usage(deep=True).sum())
        # What a check reads now: the videos within the recency horizon (RowSelection).
        read = load_training_frame(db, RetrainSettings().row_selection()).frame
        read_bytes = int(read.memory_usage(deep=True).sum())
        read_rows = len(read)
        del read
        registry = ModelRegistry(db, models)
        weightings = {
            "recency": video_weights(frame, WORLD_END, 2.0, by_impressions=False),
            "impressions_x_recency": video_weights(frame, WORLD_END, 2.0),
        }
        size: dict = {
            "videos": videos,
            "frame_rows": len(frame),
            "frame_bytes": frame_bytes,
            "read_frame_rows": read_rows,
            "read_frame_bytes": read_bytes,
        }
        for name in trees:
            booster = registry.load(registry.get(promoted[name][0]))
            maes = {}
            for weighting, weights in weightings.items():
                holdout = take_holdout(frame, weights)
                error = np.abs(predict_ctr(booster, holdout.features) - holdout.actual)
                maes[weighting] = float(np.average(error, weights=holdout.weights))
            runs = samples[name]
            seconds = stats_of(runs, "seconds")
            size[name] = {
                "seconds": seconds.as_dict(),
                "seconds_per_million_videos": seconds.median / (videos / 1e6),
                "peak_rss_bytes": stats_of(runs, "peak_rss_bytes").as_dict(),
                "peak_rss_over_frame": stats_of(runs, "peak_rss_bytes").median / frame_bytes,
                "peak_rss_over_read_frame": stats_of(runs, "peak_rss_bytes").median / read_bytes,
                "training_seconds": stats_of(runs, "training_seconds").as_dict(),
                "holdout_mae": maes,
                "own_mae_after": runs[0]["mae_after"],
                "models": promoted[name],
            }
        now, before = size["now"]["seconds"], size["reference"]["seconds"]
        size["time_ratio"] = now["median"] / before["median"]
        size["samples"] = samples
        results["sizes"][str(videos)] = size
        del frame
        write_json(results, args.json)
    rows = []
    for size in results["sizes"].values():
        for name in trees:
            figures = size[name]
            rows.append(
                [
                    f"{size['videos']:,} videos, {name}",
                    f"{figures['seconds']['median']:.1f}",
                    f"{figures['seconds']['min']:.1f}-{figures['seconds']['max']:.1f}",
                    f"{figures['seconds_per_million_videos']:.1f}",
                    f"{figures['peak_rss_bytes']['median'] / 2**20:,.0f} MiB",
                    f"{figures['peak_rss_over_frame']:.2f}",
                    f"{figures['peak_rss_over_read_frame']:.2f}",
                    f"{figures['holdout_mae']['recency']:.6f}",
                    f"{figures['holdout_mae']['impressions_x_recency']:.6f}",
                ]
            )
        rows.append(
            [
                f"{size['videos']:,} videos, now / reference",
                f"{size['time_ratio']:.2f}",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
            ]
        )
    print(
        table(
            f"Whole retrain, this tree against {args.reference}, {args.repeats} repetitions "
            "interleaved",
            [
                "run",
                "median s",
                "min-max s",
                "s per 1M videos",
                "peak RSS",
                "peak / frame",
                "peak / frame read",
                "MAE (recency w.)",
                "MAE (impr. x recency w.)",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
