"""A check on a real Dask cluster (two worker processes), reached by its address.

The world drifted after the champion was trained, and `videos` has id gaps (deleted rows)
and bad rows. The check runs through Dagster with the scheduler address from
CTR_DASK_SCHEDULER_ADDRESS, as a deployed code location would.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from distributed import LocalCluster

from ctr_assets.cluster.client import ClusterError, ClusterSettings, cluster_client
from ctr_assets.cluster.training import read_on_cluster
from ctr_assets.data.training_frame import load_training_frame
from ctr_assets.db.connection import Database
from ctr_assets.ml.evaluation import score_predictions
from ctr_assets.ml.training import TrainingParams
from ctr_assets.ml.weights import Weighting
from ctr_assets.orchestration.resources import (
    SCHEDULER_ADDRESS_VARIABLE,
    RetrainSettings,
    TrainingCluster,
)
from ctr_assets.retraining.training_set import FrameTrainingSet
from ctr_assets_tests.scenarios import Scenario, make_scenario, with_champion

# What a check weighs its videos by (CheckSettings' defaults), and the videos it reads
# (those within 14 days of the newest).
WEIGHTING = Weighting(2.0, by_impressions=False)
SELECTION = RetrainSettings().row_selection()


@pytest.fixture
def drifted(db: Database, instance: dg.DagsterInstance, tmp_path: Path) -> Scenario:
    """A champion trained before day 9; from day 9 TikTok's CTR doubled; ids with gaps."""
    scenario = with_champion(make_scenario(db, instance, tmp_path, 9), 6, 16)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM videos WHERE abs(hashtext(video_id)) % 7 = 0")
        assert cur.rowcount > 100
    return scenario


def _latest(instance: dg.DagsterInstance, key: str) -> dict:
    record = instance.fetch_materializations(dg.AssetKey(key), limit=1).records[0]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_a_check_on_the_cluster_reads_in_partitions_and_promotes_as_usual(
    drifted: Scenario, local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = drifted.db
    in_process = load_training_frame(db, SELECTION)
    assert sum(in_process.bad_rows.values()) > 0
    assert len(in_process.frame) < len(load_training_frame(db).frame)  # the horizon cuts

    # The same rows, read by the workers: every video once, both workers holding some.
    settings = ClusterSettings(local_cluster.scheduler_address, min_workers=2)
    with cluster_client(settings) as client:
        on_cluster = read_on_cluster(client, settings, db, SELECTION)
        ids = client.gather(client.map(lambda data: list(data.frame["video_id"]), on_cluster.parts))
        # Every video weighs what it weighs in process (impressions capped at the frame's
        # quantile, times recency, over the frame's mean), though no worker sees the frame.
        as_of = drifted.world.spec.day_start(drifted.day + 1)
        scale = on_cluster.weight_scale(WEIGHTING, as_of)
        weighed = client.gather(
            client.map(
                lambda data: pd.Series(scale.of(data.frame, as_of), index=data.frame["video_id"]),
                on_cluster.parts,
            )
        )
        on_cluster.release()
    in_process_weights = pd.Series(
        WEIGHTING.of(in_process.frame, as_of), index=in_process.frame["video_id"]
    )
    on_cluster_weights = pd.concat(weighed).reindex(in_process_weights.index)
    assert in_process_weights.nunique() > 100  # capped impressions and recency both vary
    np.testing.assert_allclose(on_cluster_weights, in_process_weights, rtol=1e-12)
    read_ids = [video for part in ids for video in part]
    assert len(read_ids) == len(set(read_ids))
    assert sorted(read_ids) == sorted(in_process.frame["video_id"])
    assert on_cluster.rows_read == in_process.rows_read
    assert on_cluster.bad_rows == in_process.bad_rows
    assert len(on_cluster.placement) == 2
    assert sum(on_cluster.placement.values()) == len(on_cluster.parts) >= 4

    # The check, through Dagster, on the cluster.
    champion_before = drifted.registry.champion().version
    monkeypatch.setenv(SCHEDULER_ADDRESS_VARIABLE, local_cluster.scheduler_address)
    run = drifted.check()
    assert run.success, run
    record = run.record
    described = _latest(drifted.instance, "real_training_data")
    assert described["read_on"] == local_cluster.scheduler_address
    assert described["rows_read"] == in_process.rows_read
    assert described["dagster/row_count"] == len(in_process.frame)
    assert described["bad_rows"] == sum(in_process.bad_rows.values())
    assert described["workers"] == 2
    assert record["bad_rows"] == in_process.bad_rows

    # Promotion as usual: the drifted champion is beaten on the same hold-out.
    assert record["status"] == "retrained", record["reason"]
    assert record["champion_before"] == champion_before
    assert record["champion_after"] == record["challenger"] == drifted.registry.champion().version
    champion = drifted.registry.champion()
    drifted.registry.verify_champion(champion)
    assert champion.holdout_rows == record["holdout_rows"]

    # The in-process model on the same rows, hold-out and weights: within 5%.
    alone = FrameTrainingSet(in_process).fit(TrainingParams(), as_of, WEIGHTING, None)
    local_mae = score_predictions(
        alone.holdout["ctr"].to_numpy(),
        alone.holdout["challenger"].to_numpy(),
        alone.holdout["weight"].to_numpy(),
    ).mae
    assert len(alone.holdout) == record["holdout_rows"]
    assert alone.trained.training_rows == record["training_rows"]
    assert abs(record["mae_after"] - local_mae) <= 0.05 * local_mae, (
        record["mae_after"],
        local_mae,
    )


def test_the_address_set_on_the_resource_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SCHEDULER_ADDRESS_VARIABLE, raising=False)
    assert TrainingCluster().address() is None  # in process, as on a laptop
    monkeypatch.setenv(SCHEDULER_ADDRESS_VARIABLE, "tcp://scheduler:8786")
    assert TrainingCluster().address() == "tcp://scheduler:8786"
    assert TrainingCluster(scheduler_address="tcp://other:8786").address() == "tcp://other:8786"


def test_an_unreachable_scheduler_is_one_line_that_says_what_to_do() -> None:
    settings = ClusterSettings("tcp://127.0.0.1:9", worker_wait_seconds=2)
    with pytest.raises(ClusterError, match=r"did not answer within 2 s") as error:
        cluster_client(settings).__enter__()
    assert "CTR_DASK_SCHEDULER_ADDRESS" in str(error.value)
    assert "\n" not in str(error.value)
