"""Measuring: repetitions interleaved with their reference, and peak memory per process.

Other work shares the machine (tests, the database server), so a measurement and its
reference take turns within each round, in rotating order: a burst of load hits both.
Memory is measured in a fresh Python process per repetition (`bench.fresh_process`),
as the growth of its peak resident set over its baseline once everything is imported.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_REPOSITORY = Path(__file__).resolve().parents[1]  # where `python -m bench...` finds bench


class BenchError(RuntimeError):
    """A measurement could not be taken; the message says which and why."""


@dataclass(frozen=True)
class Stats:
    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        if not values:
            raise BenchError("no values to summarise")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.min, "max": self.max, "n": self.n}


Sample = dict[str, Any]  # one repetition of one case: {"seconds": ..., other figures}


def interleaved(
    cases: Mapping[str, Callable[[], Sample]],
    repeats: int,
    before_each: Callable[[str], None] | None = None,
) -> dict[str, list[Sample]]:
    """Runs every case once per round, `repeats` rounds, the order rotating each round.

    `before_each(case)` runs untimed before each call (e.g. to reset state).
    """
    names = list(cases)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            if before_each is not None:
                before_each(name)
            samples[name].append(cases[name]())
    return samples


def timed(action: Callable[[], Any]) -> Sample:
    """One in-process measurement: wall seconds of `action()`."""
    started = time.perf_counter()
    action()
    return {"seconds": time.perf_counter() - started}


def with_seconds(action: Callable[[], Sample]) -> Callable[[], Sample]:
    """`action` timed: its own figures plus the wall seconds it took."""

    def sample() -> Sample:
        started = time.perf_counter()
        figures = action()
        return {"seconds": time.perf_counter() - started, **figures}

    return sample


def in_fresh_process(task: str, timeout_s: float = 3600, **kwargs: Any) -> Sample:
    """Runs `module:function` (a task, see `bench.fresh_process`) in a new interpreter.

    Returns its seconds, `peak_rss_bytes` (growth over the baseline after imports and
    setup) and whatever figures the task describes.
    """
    command = [sys.executable, "-m", "bench.fresh_process", task, json.dumps(kwargs)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, cwd=_REPOSITORY
        )
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"{task} did not finish within {timeout_s:.0f} s") from error
    if done.returncode != 0:
        raise BenchError(f"{task} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stats_of(samples: list[Sample], figure: str) -> Stats:
    return Stats.of([float(sample[figure]) for sample in samples])


def finite_positive(value: float) -> bool:
    return math.isfinite(value) and value > 0
