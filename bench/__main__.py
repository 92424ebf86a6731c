"""`python -m bench --scale smoke|1m|full`: see `bench/__init__.py`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.databases import Server
from bench.runner import BENCHMARKS, prepare_databases, run_benchmarks
from bench.scales import SCALES

DEFAULT_ADMIN_URL = "postgresql://root@127.0.0.1:5432/postgres"


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="smoke")
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated benchmarks to run, of {','.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("CTR_BENCH_PG_ADMIN_URL", DEFAULT_ADMIN_URL),
        help="a PostgreSQL URL allowed to create databases (CTR_BENCH_PG_ADMIN_URL)",
    )
    parser.add_argument("--prefix", default="ctr_bench", help="name prefix of the databases")
    parser.add_argument("--regenerate", action="store_true", help="rebuild the databases")
    parser.add_argument(
        "--drop-databases", action="store_true", help="drop the databases at the end"
    )
    parser.add_argument(
        "--prepare-only", action="store_true", help="generate the databases, measure nothing"
    )
    parser.add_argument("--json", type=Path, help="where to write the results")
    args = parser.parse_args(argv)
    only = tuple(name.strip() for name in args.only.split(",") if name.strip())
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {BENCHMARKS}")
    server = Server(args.admin_url, args.prefix)
    if args.prepare_only:
        prepare_databases(SCALES[args.scale], server, only, args.regenerate, log)
        return 0
    run_benchmarks(
        SCALES[args.scale],
        server,
        only=only,
        regenerate=args.regenerate,
        json_path=args.json,
        keep_databases=not args.drop_databases,
        log=log,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
