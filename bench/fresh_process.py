"""Runs one task in this (fresh) interpreter and prints its figures as one JSON line.

    python -m bench.fresh_process bench.load_bench:adbc_load '{"url": ...}'

A task is a context manager taking keyword arguments; it sets up (untimed) and yields a
`Task`. The peak resident set is reset once setup is done (`/proc/self/clear_refs`), so
`peak_rss_bytes` is what running the task added on top of the imports and setup.
"""

from __future__ import annotations

import gc
import importlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")


@dataclass(frozen=True)
class Task:
    """What to time, and how to describe its result afterwards (untimed)."""

    run: Callable[[], Any]
    describe: Callable[[Any], dict[str, Any]] = field(default=lambda _result: {})


def _status_kib(key: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} is not in {_STATUS}; peak memory needs Linux /proc")


def _reset_peak() -> bool:
    """Sets VmHWM back to the current resident set (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(task: Task) -> dict[str, Any]:
    gc.collect()
    reset = _reset_peak()
    baseline_kib = _status_kib("VmHWM")  # = current RSS after a reset
    started = time.perf_counter()
    result = task.run()
    seconds = time.perf_counter() - started
    peak_kib = _status_kib("VmHWM")
    return {
        "seconds": seconds,
        "peak_rss_bytes": (peak_kib - baseline_kib) * 1024,
        "baseline_rss_bytes": baseline_kib * 1024,
        "peak_reset": reset,
        **task.describe(result),
    }


def main(argv: list[str]) -> int:
    target, arguments = argv[1], json.loads(argv[2])
    module_name, function_name = target.split(":")
    make_task = getattr(importlib.import_module(module_name), function_name)
    with make_task(**arguments) as task:
        figures = measure(task)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
