"""A real Dask cluster for the tests: a LocalCluster of two worker processes (each under a
nanny, as in production), reached by its address like any remote scheduler."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from distributed import LocalCluster

from ctr_assets.faults import POINTS_DIRECTORY


@pytest.fixture
def fault_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CTR_FAULT_POINTS for this process and (set before the cluster starts) its workers."""
    directory = tmp_path / "fault-points"
    directory.mkdir()
    monkeypatch.setenv(POINTS_DIRECTORY, str(directory))
    return directory


@pytest.fixture
def local_cluster(fault_points: Path) -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        memory_limit="4GiB",
    ) as cluster:
        yield cluster


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance
