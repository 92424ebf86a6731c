from __future__ import annotations

import numpy as np
import pytest

from ctr_assets.data.features import PLATFORMS
from ctr_assets.db.connection import Database
from ctr_assets.simulation.populate import LEGACY_MODEL_VERSION, populate
from ctr_assets.simulation.world import BAD_ROW_KINDS, DemoWorld, outcomes_table, videos_table
from ctr_assets_tests.world_specs import small_world


def _all_videos(world: DemoWorld):
    import pyarrow as pa

    spec = world.spec
    return pa.concat_tables(
        videos_table(world.launch(day), spec.run_days, spec.end) for day in range(spec.days)
    ).to_pandas()


def test_same_seed_same_world_other_seed_other_world() -> None:
    a, b, c = (_all_videos(DemoWorld(small_world(seed=s))) for s in (7, 7, 8))
    assert a.equals(b)
    assert not np.allclose(a["hook_strength"].fillna(0), c["hook_strength"].fillna(0))


def test_a_day_regenerates_alone_identically() -> None:
    whole = DemoWorld(small_world())
    for day in range(whole.spec.days):
        whole.launch(day)
    alone = DemoWorld(small_world()).launch(13)
    assert np.array_equal(whole.launch(13).daily_clicks, alone.daily_clicks)


def test_counts_respect_invariants_except_planted_bad_rows() -> None:
    world = DemoWorld(small_world())
    videos = _all_videos(world)
    planted = np.concatenate([world.launch(d).bad_kind for d in range(world.spec.days)]) != ""
    good = videos[~planted]
    assert (good["impressions"] >= 0).all()
    assert good["clicks"].notna().all()
    assert ((good["clicks"] >= 0) & (good["clicks"] <= good["impressions"])).all()
    assert good["platform"].isin(PLATFORMS).all()
    ctr = good["clicks"] / good["impressions"].where(good["impressions"] > 0)
    assert ctr.dropna().between(0, 1).all()
    # Planted rows really break the rules, one kind each.
    bad = videos[planted]
    assert len(bad) > 0
    broken = (
        (bad["clicks"] > bad["impressions"])
        | (bad["impressions"] < 0)
        | bad["clicks"].isna()
        | ~bad["platform"].isin(PLATFORMS)
        | bad["hook_strength"].isna()
    )
    assert broken.all()


def test_every_bad_row_kind_is_planted_in_a_month() -> None:
    world = DemoWorld(small_world(days=30, videos=3000, bad_row_fraction=0.01))
    kinds = {k for d in range(30) for k in world.launch(d).bad_kind if k}
    assert kinds == set(BAD_ROW_KINDS)


def test_drift_moves_only_the_drifted_platform() -> None:
    spec = small_world(drift_day=10, drift_factor=2.0, bad_row_fraction=0.0)
    world = DemoWorld(spec)
    drifted = PLATFORMS.index(spec.drift_platform)

    def observed_ctr(days: range, on_drifted: bool) -> float:
        clicks = impressions = 0
        for day in days:
            launch = world.launch(day)
            mask = (launch.platform == drifted) == on_drifted
            clicks += launch.daily_clicks[mask].sum()
            impressions += launch.daily_impressions[mask].sum()
        return clicks / impressions

    before, after = range(0, 10), range(10, 20)
    ratio_drifted = observed_ctr(after, True) / observed_ctr(before, True)
    ratio_others = observed_ctr(after, False) / observed_ctr(before, False)
    assert 1.6 < ratio_drifted < 2.4
    assert 0.85 < ratio_others < 1.15


def test_without_drift_the_legacy_model_stays_accurate() -> None:
    world = DemoWorld(small_world(drift_day=None))
    launch = world.launch(15)
    outcome = outcomes_table(launch, world.spec).to_pandas()
    predicted = world.legacy_ctr(launch)[launch.bad_kind == ""]
    assert np.nanmean(np.abs(predicted - outcome["actual_ctr"])) < 0.01


def _count(db: Database, sql: str) -> int:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def test_populate_twice_adds_nothing_the_second_time(db: Database) -> None:
    spec = small_world()
    first = populate(db, spec)
    counts = {
        table: _count(db, f"SELECT count(*) FROM {table}")
        for table in ("videos", "prediction_records", "purchase_signals")
    }
    second = populate(db, spec)
    assert counts["videos"] == spec.videos
    assert counts["prediction_records"] == first.predictions_added > 0
    assert counts["purchase_signals"] == first.purchases_added > 0
    assert second.predictions_added == second.purchases_added == second.predictions_resolved == 0
    assert counts == {
        table: _count(db, f"SELECT count(*) FROM {table}")
        for table in ("videos", "prediction_records", "purchase_signals")
    }


def test_populated_tables_hold_the_world(db: Database) -> None:
    spec = small_world()
    summary = populate(db, spec)
    assert sum(summary.planted_bad_rows.values()) == _count(
        db,
        "SELECT count(*) FROM videos WHERE clicks > impressions OR impressions < 0 "
        "OR clicks IS NULL OR platform NOT IN ('tiktok','instagram','youtube','facebook',"
        "'snapchat') OR hook_strength = 'NaN'::float8",
    )
    # Outcomes resolve resolve_after_days after launch: the last days are still open.
    open_predictions = _count(
        db, "SELECT count(*) FROM prediction_records WHERE actual_ctr IS NULL"
    )
    assert open_predictions > 0
    assert (
        _count(db, "SELECT count(*) FROM prediction_records WHERE resolved_at > predicted_at")
        == summary.predictions_resolved
    )
    assert (
        _count(
            db,
            "SELECT count(*) FROM prediction_records WHERE actual_ctr IS NOT NULL "
            "AND (actual_ctr < 0 OR actual_ctr > 1)",
        )
        == 0
    )
    assert (
        _count(
            db,
            f"SELECT count(DISTINCT model_version) FROM prediction_records "
            f"WHERE model_version = '{LEGACY_MODEL_VERSION}'",
        )
        == 1
    )
    assert (
        _count(
            db,
            "SELECT count(*) FROM prediction_records WHERE predicted_at > "
            f"'{spec.end.isoformat()}'",
        )
        == 0
    )
    assert (
        _count(
            db,
            "SELECT count(*) FROM purchase_signals s LEFT JOIN videos v USING (video_id) "
            "WHERE v.video_id IS NULL OR s.amount <= 0",
        )
        == 0
    )


@pytest.mark.parametrize("bad", [-1, 0])
def test_world_spec_rejects_nonsense(bad: int) -> None:
    with pytest.raises(ValueError, match="at least"):
        small_world(days=bad)
