"""`python -m bench.gate_rates`: the retrain gate's error rates, by seeded simulation.

Windows of resolved predictions are drawn from `ctr_assets.simulation.gate_worlds` (true
CTRs known, binomial or over-dispersed clicks, a model with a chosen true MAE), and the
gate of `ctr_assets.ml.gate` (default confidence, CUSUM on) judges each one. Printed: the
share of windows where the noise-aware gate would retrain (its 7-day bound alone, the CUSUM
alone, either) and where the naive rule (observed MAE > 0.02) would. Then daily checks
over 30 days of one model exactly at the threshold (how often a model at the threshold
alarms across repeated, overlapping windows), and the delay from a jump to the retrain.
Impressions are drawn log-uniformly over each range (most new ads have few), CTRs
uniformly over 3-10%. Everything is seeded: the same command prints the same figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ctr_assets.ml.decision import RetrainPolicy
from ctr_assets.ml.gate import Outcomes, assess, estimate_dispersion
from ctr_assets.simulation.gate_worlds import GateWorld, draw_window, gate_alarm_rate

POLICY = RetrainPolicy()
LOW = (20, 300)

SCENARIOS: dict[str, GateWorld] = {
    "(a) perfect model, 1,050 outcomes at 20-300 impressions": GateWorld(0.0),
    "(b) true MAE = threshold, normal spread, 20-300 impressions": GateWorld(0.02),
    "(b) true MAE = threshold, equal errors, 20-300 impressions": GateWorld(0.02, "equal"),
    "(b) true MAE = threshold, normal spread, 1,000-5,000 impressions": GateWorld(
        0.02, impressions=(1000, 5000)
    ),
    "true MAE 0.015 (within), normal spread, 20-300 impressions": GateWorld(0.015),
    "(c) true MAE 0.035, equal errors, 301 outcomes at 20-300 impressions": GateWorld(
        0.035, "equal", rows_per_day=43
    ),
    "(c) true MAE 0.035, normal spread, 301 outcomes at 20-300 impressions": GateWorld(
        0.035, rows_per_day=43
    ),
    "(d) true MAE 0.025, equal errors, 2,002 outcomes at 1,000-3,000": GateWorld(
        0.025, "equal", rows_per_day=286, impressions=(1000, 3000)
    ),
    "(d) true MAE 0.025, normal spread, 2,002 outcomes at 1,000-3,000": GateWorld(
        0.025, rows_per_day=286, impressions=(1000, 3000)
    ),
    "true MAE 0.025, normal spread, 1,050 outcomes at 20-300 impressions": GateWorld(0.025),
    "over-dispersed clicks (phi 2), perfect model": GateWorld(0.0, dispersion=2.0),
    "over-dispersed clicks (phi 2), true MAE = threshold": GateWorld(0.02, dispersion=2.0),
}


def _joined(parts: list[Outcomes]) -> Outcomes:
    names = ("predicted", "observed", "impressions", "batch", "predicted_at")
    return Outcomes(*(np.concatenate([getattr(p, name) for p in parts]) for name in names))


def daily_checks(
    world: GateWorld, days: int, runs: int, seed: int, jump: tuple[int, float] | None = None
) -> dict[str, float]:
    """`runs` models each served `days` days, checked every day over the last 7 days (and
    the CUSUM over every day so far). With `jump=(day, mae)` the true MAE jumps on that day;
    returns the share of runs with any alarm and, for a jump, the delay to the first alarm
    (days from the jump to the check that alarms; outcomes of a day are known that day)."""
    rng = np.random.default_rng(seed)
    alarmed, delays, alarm_days = 0, [], 0
    for _ in range(runs):
        parts = []
        for day in range(days):
            mae = jump[1] if jump and day >= jump[0] else world.true_mae
            parts.append(draw_window(rng, replace(world, true_mae=mae, days=1), first_day=day))
        phi = estimate_dispersion(_joined(parts)).phi
        first = None
        for day in range(6, days):
            evidence = assess(
                _joined(parts[day - 6 : day + 1]),
                _joined(parts[: day + 1]),
                POLICY.mae_threshold,
                POLICY.confidence,
                phi=phi,
                cusum_k=POLICY.cusum_k,
                cusum_h=POLICY.cusum_h,
                with_bounds=False,
            )
            alarm = evidence.breach or evidence.cusum_alarm
            alarm_days += alarm
            if alarm and first is None:
                first = day
        alarmed += first is not None
        if jump and first is not None:
            delays.append(first - jump[0])
    result = {
        "runs": runs,
        "any_alarm": alarmed / runs,
        "alarms_per_check": alarm_days / (runs * (days - 6)),
    }
    if jump:
        result |= {
            "median_delay_days": float(np.median(delays)) if delays else float("nan"),
            "worst_delay_days": float(max(delays)) if delays else float("nan"),
            "caught": len(delays) / runs,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gate_rates", description=__doc__)
    parser.add_argument("--windows", type=int, default=1000, help="windows per scenario")
    parser.add_argument("--runs", type=int, default=100, help="30-day runs per daily scenario")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path, default=Path("bench/results/gate_rates.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results: dict[str, object] = {
        "policy": asdict(POLICY),
        "windows": args.windows,
        "scenarios": {},
        "daily": {},
    }
    header = f"{'scenario':68} {'bound':>6} {'CUSUM':>6} {'gate':>6} {'naive':>6} {'obs MAE':>8}"
    print(
        f"Alarm rate per 7-day window, {args.windows} windows each "
        f"(confidence {POLICY.confidence}, CUSUM k={POLICY.cusum_k} h={POLICY.cusum_h})"
    )
    print(header)
    for index, (name, world) in enumerate(SCENARIOS.items()):
        rate = gate_alarm_rate(
            world,
            args.windows,
            args.seed + index,
            threshold=POLICY.mae_threshold,
            confidence=POLICY.confidence,
            cusum_k=POLICY.cusum_k,
            cusum_h=POLICY.cusum_h,
        )
        results["scenarios"][name] = asdict(rate) | {"world": asdict(world)}  # type: ignore[index]
        print(
            f"{name:68} {rate.gate:6.3f} {rate.cusum:6.3f} {rate.either:6.3f} "
            f"{rate.naive:6.3f} {rate.mean_observed_mae:8.4f}",
            flush=True,
        )
    print(f"\nDaily checks over 30 days, {args.runs} runs each (150 outcomes a day)")
    daily = {
        "true MAE = threshold, 20-300 impressions": (GateWorld(0.02), None),
        "true MAE = threshold, over-dispersed clicks (phi 2)": (
            GateWorld(0.02, dispersion=2.0),
            None,
        ),
        "jump from 0.005 to 0.03 on day 15, 20-300 impressions": (GateWorld(0.005), (15, 0.03)),
        "jump from 0.005 to 0.025 on day 15, 2,000-20,000 impressions": (
            GateWorld(0.005, impressions=(2000, 20000)),
            (15, 0.025),
        ),
    }
    for index, (name, (world, jump)) in enumerate(daily.items()):
        figures = daily_checks(world, 30, args.runs, args.seed + 100 + index, jump)
        results["daily"][name] = figures  # type: ignore[index]
        print(f"{name:68} " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()), flush=True)
    seconds = time.perf_counter() - started
    results["seconds"] = seconds
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.json} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
