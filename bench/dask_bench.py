"""The whole retrain in process against the same retrain on a Dask cluster of 2 local workers.

    .venv/bin/python -m bench.dask_bench [--videos 1000000] [--repeats 1]

The world is the retrain benchmark's (`bench.retrain_bench`: a stale champion breaches, the
check retrains and promotes), in a database of its own (`ctr_dask_bench_videos_<n>`). Each
repetition of each mode runs `run_check_in_process` (the whole graph) in a fresh Python
process (the Dagster process); in `dask` mode that process points the `training_cluster`
resource at a `LocalCluster` of 2 worker processes (1 thread each), started fresh for the
repetition by this script. Figures: wall seconds, the peak RSS the run added to the Dagster
process (`VmHWM` reset after imports), and each worker's peak RSS (`VmHWM` reset once the
worker is up, read after the run; the growth and the absolute peak). Results go to
`bench/results/dask.json`.

On one machine Dask can only add overhead (serialisation, a scheduler, a collective between
processes that share the same cores); what the figures show is where the memory goes: with
workers, the Dagster process no longer holds the frame, and each worker holds its share.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

import dagster as dg

from bench.databases import WORLD_END, Server, model_dir
from bench.fresh_process import Task
from bench.harness import BenchError, in_fresh_process, interleaved
from bench.retrain_bench import install_stale_champion, restore_champion
from bench.world_data import videos_database
from ctr_assets.db.connection import Database
from ctr_assets.orchestration.resources import SCHEDULER_ADDRESS_VARIABLE
from ctr_assets.orchestration.run_check import CheckRun, run_check_in_process

RESULTS = Path(__file__).resolve().parent / "results" / "dask.json"
PREFIX = "ctr_dask_bench"
WORKERS = 2


@contextmanager
def retrain(url: str, model_dir: str, as_of: str, address: str | None) -> Iterator[Task]:
    """Fresh-process task: one whole check that must promote, in process or on `address`."""
    if address:
        os.environ[SCHEDULER_ADDRESS_VARIABLE] = address
    else:
        os.environ.pop(SCHEDULER_ADDRESS_VARIABLE, None)
    with dg.instance_for_test() as instance:

        def run() -> CheckRun:
            return run_check_in_process(
                instance,
                Database(url),
                model_dir=model_dir,
                as_of=datetime.fromisoformat(as_of),
                log_level="WARNING",
            )

        def describe(check: CheckRun) -> dict[str, Any]:
            record = check.record or {}
            if not check.success or record.get("status") != "retrained":
                raise BenchError(
                    f"run {check.run_id} did not promote: success={check.success}, "
                    f"status={record.get('status')}, reason={record.get('reason')}"
                )
            return {
                key: record[key]
                for key in ("training_rows", "holdout_rows", "training_seconds", "mae_after")
            }

        yield Task(run=run, describe=describe)


def _vm_hwm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM is not in /proc/self/status")


def _reset_peak() -> int:
    Path("/proc/self/clear_refs").write_text("5")
    return _vm_hwm_bytes()


def _on_cluster(run_case) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster.scheduler_address, set_as_default=False) as client,
    ):
        baselines = client.run(_reset_peak)
        sample = run_case(cluster.scheduler_address)
        peaks = client.run(_vm_hwm_bytes)
    sample["workers"] = [
        {"peak_rss_bytes": peaks[w], "peak_growth_bytes": peaks[w] - baselines[w]}
        for w in sorted(peaks)
    ]
    return sample


def run_dask_bench(videos: int, repeats: int, admin_url: str) -> dict[str, Any]:
    server = Server(admin_url, prefix=PREFIX)
    db = videos_database(server, videos, regenerate=False, log=print)
    models = model_dir(f"{PREFIX}_videos_{videos}")
    stale = install_stale_champion(db, models, videos)

    def case(address: str | None) -> dict[str, Any]:
        return in_fresh_process(
            "bench.dask_bench:retrain",
            url=db.url,
            model_dir=str(models),
            as_of=WORLD_END.isoformat(),
            address=address,
        )

    samples = interleaved(
        {"in_process": lambda: case(None), "dask": lambda: _on_cluster(case)},
        repeats,
        lambda _name: restore_champion(db, models, stale),
    )
    return {
        "videos": videos,
        "workers": WORKERS,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "samples": samples,
    }


def summary(result: dict[str, Any]) -> list[str]:
    mib = 2**20
    local, dask = result["samples"]["in_process"], result["samples"]["dask"]
    local_s = median([s["seconds"] for s in local])
    dask_s = median([s["seconds"] for s in dask])
    local_rss = median([s["peak_rss_bytes"] for s in local])
    dask_rss = median([s["peak_rss_bytes"] for s in dask])
    worker_peak = median([max(w["peak_rss_bytes"] for w in s["workers"]) for s in dask])
    worker_growth = median([max(w["peak_growth_bytes"] for w in s["workers"]) for s in dask])
    return [
        f"{result['videos']:,} videos, {result['workers']} local workers, "
        f"{len(local)} repetition(s) each (medians)",
        f"in process: {local_s:7.1f} s, Dagster process +{local_rss / mib:,.0f} MiB",
        f"dask:       {dask_s:7.1f} s, Dagster process +{dask_rss / mib:,.0f} MiB, "
        f"largest worker +{worker_growth / mib:,.0f} MiB (peak {worker_peak / mib:,.0f} MiB)",
        f"time dask / in process: {dask_s / local_s:.2f}x; Dagster process memory dask / in "
        f"process: {dask_rss / local_rss:.2f}x; largest worker's growth / in-process "
        f"growth: {worker_growth / local_rss:.2f}x",
        "hold-out MAE in process / dask: "
        + ", ".join(f"{s['mae_after']:.5f}" for s in local)
        + " / "
        + ", ".join(f"{s['mae_after']:.5f}" for s in dask),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "CTR_BENCH_PG_ADMIN_URL", "postgresql://root@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run_dask_bench(args.videos, args.repeats, args.admin_url)
    result["summary"] = summary(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(result["summary"]))
    print(f"wrote {args.json}")


if __name__ == "__main__":  # the LocalCluster's worker processes import this module
    main()
