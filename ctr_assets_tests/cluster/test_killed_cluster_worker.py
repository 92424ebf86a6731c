"""A Dask worker killed with -9 in the middle of the fit.

Both workers pause after their first boosting round (fault point `training`, armed through
CTR_FAULT_POINTS, which the worker processes inherit); the test kills one of them for real,
lets the other go on, and the check must fail quickly, in one line that names the worker,
with an `error` record and the champion unchanged; the cluster then trains the next check.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from distributed import LocalCluster

from ctr_assets.cluster import client
from ctr_assets.cluster.client import ClusterError, ClusterSettings, within_deadline
from ctr_assets.orchestration.resources import SCHEDULER_ADDRESS_VARIABLE
from ctr_assets_tests.cluster.test_cluster_check import drifted  # noqa: F401
from ctr_assets_tests.scenarios import Scenario

PAUSED_WITHIN_SECONDS = 120
# The resource's timeout is an hour: the loss is noticed, not waited out. Typically 0.4-1.2 s;
# once, as the first test of a cold suite, more than 30 s, so the bound leaves room.
FAILED_WITHIN_SECONDS = 90


def _wait_for(path: Path, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path.name} did not appear within {seconds} s")


def test_a_worker_killed_mid_fit_fails_the_check_and_keeps_the_champion(
    drifted: Scenario,  # noqa: F811
    local_cluster: LocalCluster,
    fault_points: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    champion_before = drifted.registry.champion().version
    worker_pids = set(_worker_pids(local_cluster))
    monkeypatch.setenv(SCHEDULER_ADDRESS_VARIABLE, local_cluster.scheduler_address)
    (fault_points / "training").touch()
    result: dict = {}
    check = threading.Thread(target=lambda: result.update(run=drifted.check()), daemon=True)
    check.start()

    try:
        victim = int(_wait_for(fault_points / "training.paused", PAUSED_WITHIN_SECONDS))
        assert victim in worker_pids  # a worker process, not the process running the check
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
    finally:  # the survivor boosts on, towards a dead peer (and no worker stays held)
        (fault_points / "training").unlink()
    check.join(FAILED_WITHIN_SECONDS)
    assert not check.is_alive(), f"the check still runs {FAILED_WITHIN_SECONDS} s after the kill"
    failed_after = time.monotonic() - killed_at
    print(f"check failed {failed_after:.1f} s after the worker was killed")

    run = result["run"]
    assert not run.success
    record = run.record
    assert record["status"] == "error"
    assert "left the cluster while it held training data" in record["reason"]
    assert "the champion is unchanged" in record["reason"]
    assert record["champion_after"] == record["champion_before"] == champion_before
    assert drifted.registry.champion().version == champion_before
    drifted.registry.verify_champion(drifted.registry.champion())

    # The nanny restarts the killed worker; the survivor may still hold its thread in
    # XGBoost's collective, waiting on its dead peer (until the collective's timeout), so the
    # workers are restarted, as an operator would after a loss; then the next check trains.
    from distributed import Client

    with Client(local_cluster.scheduler_address, set_as_default=False) as client:
        client.restart(wait_for_workers=True)
    local_cluster.wait_for_workers(2, timeout=60)
    again = drifted.check()
    assert again.success, again
    assert again.record["status"] == "retrained"


def _worker_pids(cluster: LocalCluster) -> list[int]:
    from distributed import Client

    with Client(cluster.scheduler_address, set_as_default=False) as client:
        return list(client.run(os.getpid).values())


def test_work_past_the_deadline_fails_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ClusterSettings("tcp://127.0.0.1:1", timeout_seconds=1)
    # Every worker stays: only the deadline can end the wait.
    monkeypatch.setattr(client, "current_workers", lambda _client: {"tcp://a:1"})
    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"did not finish within 1 s; the champion is unchanged"):
        within_deadline(None, settings, {"tcp://a:1"}, "training", lambda: time.sleep(30))
    assert time.monotonic() - started < 5
