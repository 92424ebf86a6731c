"""5,000 purchase signals from 4 concurrent writers while the sensor ticks: each counted
once. (The 100,000-signal figure, with tick times, is `python -m bench --only
purchase_load`.)"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest

from bench.purchase_writers import write_signals
from ctr_assets.db.connection import Database
from ctr_assets_tests.faults.purchase_ticks import signal_count, tick

SIGNALS = 5_000
WRITERS = 4


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def test_signals_from_concurrent_writers_are_each_counted_once(
    db: Database, instance: dg.DagsterInstance
) -> None:
    cursor = tick(instance, db, None).cursor
    requests: list[dg.RunRequest] = []
    with ThreadPoolExecutor(WRITERS) as pool:
        writers = [
            pool.submit(write_signals, db.url, writer, SIGNALS // WRITERS, 7)
            for writer in range(WRITERS)
        ]
        while not all(writer.done() for writer in writers):
            step = tick(instance, db, cursor)
            cursor = step.cursor
            if isinstance(step.result, dg.RunRequest):
                requests.append(step.result)
        tallies = [writer.result() for writer in writers]
    last = tick(instance, db, cursor)
    if isinstance(last.result, dg.RunRequest):
        requests.append(last.result)
    assert "no new purchase signals" in tick(instance, db, last.cursor).words

    committed = sum(tally["committed"] for tally in tallies)
    assert sum(tally["rolled_back"] for tally in tallies) > 0  # the load had aborts...
    assert sum(tally["duplicates"] for tally in tallies) > 0  # ...and re-deliveries
    assert signal_count(db) == committed
    # Counted while the writers wrote, in many batches, each once.
    assert len(requests) >= 5
    assert sum(int(r.tags["ctr_assets/purchases"]) for r in requests) == committed
    assert len({r.run_key for r in requests}) == len(requests)
    spans = [tuple(map(int, r.tags["ctr_assets/purchase_xids"].split("-"))) for r in requests]
    for (_, until), (since, _) in itertools.pairwise(spans):
        assert since >= until  # batches follow each other (skips in between move it on)
