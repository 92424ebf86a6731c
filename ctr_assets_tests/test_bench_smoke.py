"""The benchmarks at smoke scale produce every figure (not how fast: that is theirs to say)."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import pytest

from bench.databases import Server
from bench.runner import run_benchmarks
from bench.scales import SCALES


def _expected_figures() -> list[str]:
    scale = SCALES["smoke"]
    names = []
    for videos in scale.load_videos:
        prefix = f"load/{videos}"
        names += [f"{prefix}/ratio_to_floor", f"{prefix}/peak_rss_over_frame"]
        names += [f"{prefix}/{m}/seconds/median" for m in ("adbc", "copy_floor", "read_sql")]
        names += [f"{prefix}/adbc/peak_rss_bytes", f"{prefix}/adbc/rows_per_second"]
    small, large = (f"{rows:,} rows" for rows in scale.signal_rows)
    for label in (small, large):
        names += [
            f"sensors/accuracy sensor @ {label}/seconds/median",
            f"sensors/purchase sensor @ {label}/seconds/median",
            f"sensors/new_purchase_signals @ {label}/seconds/median",
            f"sensors/measure_accuracy 7 days @ {label}/seconds/median",
        ]
    names += ["sensors/accuracy/tick_growth", "sensors/purchase/tick_growth"]
    names += ["training/overhead_ratio", "training/train_ctr_model/seconds/median"]
    for videos in scale.retrain_videos:
        names += [
            f"retrain/{videos}/seconds/median",
            f"retrain/{videos}/peak_rss_bytes",
            f"retrain/{videos}/seconds_per_million_videos",
        ]
    names += [
        "purchase_load/committed",
        "purchase_load/probe/counted",
        "purchase_load/probe_tick/seconds/median",
    ]
    return names


def test_smoke_scale_produces_every_figure(
    pg_admin_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = Server(pg_admin_url, prefix=f"ctr_bench_t{uuid.uuid4().hex[:8]}")
    out = tmp_path / "smoke.json"
    try:
        results = run_benchmarks(
            SCALES["smoke"], server, json_path=out, keep_databases=False, log=lambda _: None
        )
        assert server.names() == []  # every database it made is gone
    finally:
        for name in server.names():
            server.drop(name)

    printed = capsys.readouterr().out
    assert "Targets" in printed
    assert "smoke scale: too small to judge" in printed  # its MISSED lines are not a verdict
    written = json.loads(out.read_text())
    assert written["figures"] == results["figures"]
    figures = written["figures"]
    missing = [name for name in _expected_figures() if name not in figures]
    assert not missing, f"figures not produced: {missing}"
    bad = {
        name: value
        for name, value in figures.items()
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0)
    }
    assert not bad, f"figures that are missing, not finite or not positive: {bad}"
    assert {t["target"].split(":")[0].split(" ")[0] for t in written["targets"]} >= {
        "load",
        "training",
    }
    assert all(isinstance(t["met"], bool) for t in written["targets"])
    assert written["benchmarks"]["training"][0]["product_model_equals_reference"] is True
    assert figures["purchase_load/probe/counted"] == figures["purchase_load/committed"]
