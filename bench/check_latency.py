"""`python -m bench.check_latency`: where the time of an on-demand check goes.

`ctr-assets check-retrain` is run as a user runs it, as a fresh process, on the demo world
(`ctr-assets simulate` with the defaults) with a champion that has no resolved predictions
yet, so every check decides `insufficient_data` and trains nothing: the time measured is
the machinery's, not XGBoost's. Each repetition runs one check through a real Dagster
webserver and daemon (the `ctr-assets dev` processes) and, right after it, one with
`--in-process`, so both see the same machine load.

A check through the webserver is split by the run's own event timestamps:
  submit        the command starts, imports, finds the webserver and submits the run
  queue         the run waits in the queue until the daemon dequeues and launches it
  worker start  a run worker process starts and loads the code location
  steps         the run's steps, resources included
  return        the run has ended until the command has printed the record and exited

It runs twice, each time on a fresh Dagster storage and the same application database:
`after` is this installation with its shipped `dagster.yaml`; `before` is the
installation given by `--before-venv` (the virtualenv of a checkout of the earlier code,
with that checkout's `dagster.yaml`), or, without it, this installation with the instance
settings this bench is about set back to Dagster's defaults. Results go to
`bench/results/check_latency.json`.

    git worktree add /tmp/before <commit> && python3 -m venv /tmp/before/.venv \
        && /tmp/before/.venv/bin/pip install -e /tmp/before
    .venv/bin/python -m bench.check_latency --before-venv /tmp/before/.venv
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg2
import requests
import yaml

from ctr_assets.db.connection import Database
from ctr_assets.db.schema import migrate
from ctr_assets.deploy.local_stack import LocalStack, StackPaths, write_instance_files
from ctr_assets.simulation.populate import populate
from ctr_assets.simulation.world import WorldSpec

BIN = Path(sys.executable).parent
RESULTS = Path(__file__).parent / "results" / "check_latency.json"
DEFAULT_ADMIN_URL = "postgresql://root@127.0.0.1:5432/postgres"
PHASES = ("submit", "queue", "worker start", "steps", "return")
# The settings of the shipped dagster.yaml that this bench is about; `before` drops them.
LATENCY_SETTINGS = (("run_coordinator", "config"),)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Installation:
    """Where a variant's commands come from, and the dagster.yaml its stack runs on."""

    bin: Path
    dagster_yaml: str


def installations(before_venv: Path | None) -> dict[str, Installation]:
    shipped = (resources.files("ctr_assets.deploy") / "dagster.yaml").read_text()
    if before_venv is None:
        before = Installation(BIN, instance_yaml("before"))
    else:
        checkout = before_venv.resolve().parent
        before = Installation(before_venv / "bin", (checkout / "dagster.yaml").read_text())
    return {"before": before, "after": Installation(BIN, shipped)}


def instance_yaml(variant: str) -> str:
    shipped = (resources.files("ctr_assets.deploy") / "dagster.yaml").read_text()
    if variant == "after":
        return shipped
    document = yaml.safe_load(shipped)
    for path in LATENCY_SETTINGS:
        node = document
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    return yaml.safe_dump(document, sort_keys=False)


def _database(admin_url: str, name: str) -> Database:
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    head, _, query = admin_url.partition("?")
    return Database(head.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else ""))


def _environment(db: Database, home: Path, **extra: str) -> dict[str, str]:
    unset = {"DAGSTER_HOME", "DAGSTER_POSTGRES_URL", "MLFLOW_TRACKING_URI"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(DATABASE_URL=db.url, CTR_HOME=str(home), **extra)
    return env


def check(
    env: dict[str, str], *args: str, bin_dir: Path = BIN
) -> tuple[float, float, dict[str, Any]]:
    """One `ctr-assets check-retrain`: its start and end (Unix time) and its record."""
    start = time.time()
    done = subprocess.run(
        [str(bin_dir / "ctr-assets"), "check-retrain", *args],
        env=env,
        cwd=env["CTR_HOME"],
        capture_output=True,
        text=True,
        check=False,
    )
    end = time.time()
    if done.returncode != 0:
        raise RuntimeError(f"check-retrain {args} failed: {done.stderr[-2000:]}")
    return start, end, json.loads(done.stdout)


class VariantStack(LocalStack):
    """`ctr-assets dev`'s webserver and daemon, from a given installation's bin folder."""

    bin_dir: Path = BIN

    def executable(self, name: str) -> str:
        return str(self.bin_dir / name)


@contextmanager
def running_stack(
    db: Database, home: Path, installation: Installation, storage: str
) -> Iterator[LocalStack]:
    paths = StackPaths(home)
    write_instance_files(paths)
    (paths.dagster_home / "dagster.yaml").write_text(installation.dagster_yaml)
    port = _free_port()
    stack = VariantStack(paths, db, "127.0.0.1", port, [])
    stack.bin_dir = installation.bin
    # Sensors tick once at start; then only the checks measured here run.
    os.environ["CTR_PURCHASE_SENSOR_INTERVAL_SECONDS"] = "86400"
    os.environ["CTR_ACCURACY_SENSOR_INTERVAL_SECONDS"] = "86400"
    try:
        stack.start(storage)
        stack.wait_until_ready()
        yield stack
    finally:
        stack.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(url: str, query: str) -> dict[str, Any]:
    answer = requests.post(f"{url}/graphql", json={"query": query}, timeout=30)
    answer.raise_for_status()
    return answer.json()["data"]


_REPOSITORIES = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"


def wait_until_quiet(url: str, quiet_seconds: float = 15, timeout: float = 600) -> None:
    """The code location loaded and no run queued or going for `quiet_seconds`."""
    query = (
        "{ runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]})"
        " { ... on Runs { results { runId } } } }"
    )
    deadline, quiet_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            busy = _graphql(url, query)["runsOrError"]["results"]
            loaded = _graphql(
                url, "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"
            )
            ready = bool(loaded["repositoriesOrError"]["nodes"]) and not busy
        except (requests.RequestException, KeyError, TypeError):
            ready = False
        if not ready:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_seconds:
            return
        time.sleep(1)
    raise TimeoutError(f"runs kept going on {url}")


def phases(instance, run_id: str, start: float, end: float) -> dict[str, float]:
    """The run's timeline from its event log, split into PHASES (seconds)."""
    from dagster import DagsterEventType

    record = instance.get_run_record_by_id(run_id)
    created = record.create_timestamp.timestamp()
    first: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        if entry.dagster_event is not None:
            first.setdefault(entry.dagster_event.event_type_value, entry.timestamp)
    launched = first[DagsterEventType.RUN_STARTING.value]
    started = first[DagsterEventType.RUN_START.value]
    succeeded = first[DagsterEventType.RUN_SUCCESS.value]
    return {
        "submit": created - start,
        "queue": launched - created,
        "worker start": started - launched,
        "steps": succeeded - started,
        "return": end - succeeded,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import dagster as dg

    root = Path(tempfile.mkdtemp(prefix="ctr-latency-"))
    db = _database(args.admin_url, f"{args.prefix}_app")
    migrate(db)
    summary = populate(db, WorldSpec())
    log(f"demo world: {summary.videos} videos, {summary.predictions_added} predictions")
    (root / "models-home").mkdir(parents=True)
    _, _, first = check(_environment(db, root / "models-home"), "--in-process")
    log(f"first champion: {first['status']} {first['champion_after']}")
    results: dict[str, Any] = {"variants": {}}
    variants = installations(args.before_venv)
    for variant in args.variants:
        installation = variants[variant]
        storage = _database(args.admin_url, f"{args.prefix}_dagster_{variant}").sqlalchemy_url
        home = root / variant
        with running_stack(db, home, installation, storage) as stack:
            wait_until_quiet(stack.url)
            os.environ["DAGSTER_POSTGRES_URL"] = storage
            instance = dg.DagsterInstance.from_config(str(stack.paths.dagster_home))
            env = _environment(db, home)
            run = {"bin_dir": installation.bin}
            check(env, "--webserver", stack.url, **run)  # warm-up: caches, connections
            samples = []
            for repetition in range(args.checks):
                start, end, record = check(env, "--webserver", stack.url, **run)
                split = phases(instance, record["run_id"], start, end)
                in_start, in_end, in_record = check(env, "--in-process", **run)
                sample = {
                    "webserver_seconds": end - start,
                    "in_process_seconds": in_end - in_start,
                    "status": record["status"],
                    "in_process_status": in_record["status"],
                    "phases": split,
                }
                samples.append(sample)
                log(
                    f"{variant} #{repetition + 1}: webserver {end - start:.1f} s ("
                    + ", ".join(f"{name} {value:.1f}" for name, value in split.items())
                    + f"), in-process {in_end - in_start:.1f} s"
                )
            instance.dispose()
        results["variants"][variant] = {
            "installation": str(installation.bin.parent),
            "dagster_yaml": installation.dagster_yaml,
            "samples": samples,
        }
    return results


def _median(values: list[float]) -> float:
    return statistics.median(values)


def report(results: dict[str, Any]) -> None:
    print(
        f"{'variant':<8} {'webserver s':>12} {'in-process s':>13} {'ratio':>6}  "
        + "  ".join(f"{p:>12}" for p in PHASES)
    )
    for variant, data in results["variants"].items():
        samples = data["samples"]
        web = _median([s["webserver_seconds"] for s in samples])
        local = _median([s["in_process_seconds"] for s in samples])
        split = {p: _median([s["phases"][p] for s in samples]) for p in PHASES}
        print(
            f"{variant:<8} {web:>12.1f} {local:>13.1f} {web / local:>6.2f}  "
            + "  ".join(f"{split[p]:>12.1f}" for p in PHASES)
        )
    print(
        "(medians over the repetitions; the phases are those of the webserver check; "
        "ratio = webserver / in-process)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.check_latency", description=__doc__)
    parser.add_argument("--checks", type=int, default=5, help="repetitions per variant")
    parser.add_argument(
        "--variants", nargs="+", choices=("before", "after"), default=["before", "after"]
    )
    parser.add_argument(
        "--admin-url", default=os.environ.get("CTR_BENCH_PG_ADMIN_URL", DEFAULT_ADMIN_URL)
    )
    parser.add_argument("--prefix", default="ctr_bench_latency")
    parser.add_argument(
        "--before-venv",
        type=Path,
        help="virtualenv of a checkout of the earlier code (default: this installation "
        "with Dagster's defaults for the settings measured)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = measure(args)
    results["measured_at"] = datetime.now(UTC).isoformat()
    results["machine"] = {"cpus": os.cpu_count(), "load_average": os.getloadavg()}
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
