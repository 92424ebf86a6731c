"""Block ranges of one exported snapshot: each a TID range scan, together every row once,
and all of them blind to what is written after the snapshot."""

from __future__ import annotations

import itertools

import psycopg2
import pytest

from ctr_assets.cluster.snapshot import (
    BlockRange,
    block_ranges,
    exported_snapshot,
    partition_count,
    table_parts,
)
from ctr_assets.data.training_frame import (
    RowSelection,
    TablePart,
    load_training_frame,
    training_query,
)
from ctr_assets.db.connection import Database
from ctr_assets.simulation.populate import populate
from ctr_assets_tests.world_specs import small_world


@pytest.mark.parametrize(
    ("blocks", "partitions"), [(0, 4), (1, 4), (10, 3), (97, 4), (1000, 8), (5, 5)]
)
def test_block_ranges_tile_the_table(blocks: int, partitions: int) -> None:
    ranges = block_ranges(blocks, partitions)
    assert ranges[0].first == 0
    assert ranges[-1].end is None  # open-ended: nothing past the count is missed
    for before, after in itertools.pairwise(ranges):
        assert before.end == after.first
        assert before.first < before.end
    assert len(ranges) == max(1, min(partitions, blocks))


@pytest.mark.parametrize(
    ("workers", "per_worker", "free", "expected"),
    [(2, 2, 90, 4), (2, 4, 90, 8), (8, 4, 20, 10), (1, 2, 1, 1), (3, 2, 0, 1)],
)
def test_partitions_per_worker_within_the_connection_limit(
    workers: int, per_worker: int, free: int, expected: int
) -> None:
    assert partition_count(workers, per_worker, free) == expected


def test_each_partition_is_a_tid_range_scan(db: Database) -> None:
    populate(db, small_world(videos=400))
    condition = BlockRange(2, 5).condition()
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("ANALYZE videos")
        cur.execute("EXPLAIN " + training_query(RowSelection(100), condition))
        plan = "\n".join(row[0] for row in cur.fetchall())
    assert "Tid Range Scan on videos" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_partitions_hold_every_row_once_as_of_the_snapshot(db: Database) -> None:
    populate(db, small_world(videos=1500))
    with db.connect() as conn, conn.cursor() as cur:  # gaps in ids and in blocks
        cur.execute("DELETE FROM videos WHERE abs(hashtext(video_id)) % 5 = 0")
    whole = load_training_frame(db)
    with exported_snapshot(db) as snapshot:
        writer = psycopg2.connect(db.url)
        writer.autocommit = True
        with writer.cursor() as cur:  # written after the snapshot: no partition may see it
            cur.execute(
                "INSERT INTO videos (video_id, platform, impressions, clicks, conversions) "
                "SELECT 'late-' || g, 'tiktok', 1000, 10, 0 FROM generate_series(1, 50) g"
            )
            cur.execute("DELETE FROM videos WHERE video_id = %s", (whole.frame.video_id[0],))
        writer.close()
        parts = [
            load_training_frame(db, RowSelection(100), part) for part in table_parts(snapshot, 4)
        ]
    assert len(parts) == 4
    assert all(len(part.frame) for part in parts)
    ids = [video for part in parts for video in part.frame["video_id"]]
    assert len(ids) == len(set(ids))  # no video twice
    assert sorted(ids) == sorted(whole.frame["video_id"])  # the snapshot's rows, all of them
    assert sum(p.rows_read for p in parts) == whole.rows_read
    for reason, count in whole.bad_rows.items():
        assert sum(p.bad_rows[reason] for p in parts) == count
    assert sum(whole.bad_rows.values()) > 0
    assert len(load_training_frame(db).frame) == len(whole.frame) + 50 - 1  # now visible


def test_a_snapshot_id_is_checked_before_it_reaches_sql() -> None:
    with pytest.raises(ValueError, match="not an exported snapshot id"):
        TablePart("x'; DROP TABLE videos; --", "true")
