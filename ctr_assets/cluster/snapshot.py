"""One consistent snapshot of `videos`, cut into block ranges that workers read in parallel.

The coordinator opens a REPEATABLE READ transaction and exports its snapshot
(`pg_export_snapshot()`). While that transaction stays open, each worker begins its own
REPEATABLE READ transaction with `SET TRANSACTION SNAPSHOT`, so every partition sees exactly
the rows the coordinator sees, whatever is written meanwhile.

A partition is a range of heap blocks, `ctid >= '(a,0)' AND ctid < '(b,0)'`. From
PostgreSQL 14 the planner reads such a range with a TID Range Scan: each worker reads its
own blocks, not the whole table. A row version lives in exactly one block, so the ranges,
which tile the table (the last one open-ended), hold every row once. Block ranges need no
index and no statistics, and split a table of any key evenly by its size on disk.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2.extensions

from ctr_assets.data.training_frame import TablePart
from ctr_assets.db.connection import Database

# TID Range Scan arrived in PostgreSQL 14; before it, each range would be a full scan.
MIN_SERVER_VERSION = 140000


class SnapshotError(RuntimeError):
    """The server cannot give the workers one snapshot to read from."""


@dataclass(frozen=True)
class ExportedSnapshot:
    """An exported snapshot of the database, valid while the coordinator's transaction is."""

    snapshot_id: str  # pg_export_snapshot()
    visible: str  # pg_current_snapshot(): xmin:xmax:xip, for the record
    blocks: int  # heap blocks of `videos` when the snapshot was taken
    free_connections: int  # connections the server can still take


@dataclass(frozen=True)
class BlockRange:
    """Heap blocks [first, end) of `videos`; `end` None reads to the end of the table."""

    first: int
    end: int | None

    def condition(self) -> str:
        lower = f"ctid >= '({int(self.first)},0)'::tid"
        return lower if self.end is None else f"{lower} AND ctid < '({int(self.end)},0)'::tid"


@contextlib.contextmanager
def exported_snapshot(db: Database) -> Iterator[ExportedSnapshot]:
    """Holds a read-only REPEATABLE READ transaction open and yields its exported snapshot."""
    conn = psycopg2.connect(db.url)
    try:
        conn.set_session(
            isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True
        )
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_export_snapshot(), pg_current_snapshot()::text,"
                " current_setting('server_version_num')::int,"
                " coalesce(pg_relation_size(to_regclass('videos'))"
                "   / current_setting('block_size')::int, 0),"
                " current_setting('max_connections')::int"
                " - current_setting('superuser_reserved_connections')::int"
                " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
            )
            snapshot_id, visible, version, blocks, free = cur.fetchone()
        if version < MIN_SERVER_VERSION:
            raise SnapshotError(
                f"reading on a cluster needs PostgreSQL 14 or later (TID range scans); the "
                f"server runs {version // 10000}; upgrade it or leave the cluster unset"
            )
        yield ExportedSnapshot(snapshot_id, visible, int(blocks), int(free))
    finally:
        with contextlib.suppress(psycopg2.Error):
            conn.rollback()
        conn.close()


def partition_count(workers: int, per_worker: int, free_connections: int) -> int:
    """`per_worker` partitions per worker, but never more than half the free connections
    (the workers read several at once, and the server has other clients)."""
    if workers < 1 or per_worker < 1:
        raise ValueError(f"need at least one worker and partition, got {workers}, {per_worker}")
    return max(1, min(workers * per_worker, free_connections // 2))


def block_ranges(blocks: int, partitions: int) -> list[BlockRange]:
    """`partitions` contiguous ranges of about equal size tiling [0, blocks); the last is
    open-ended, so nothing past the count taken at the snapshot is missed."""
    if partitions < 1:
        raise ValueError(f"need at least one partition, got {partitions}")
    partitions = max(1, min(partitions, blocks))
    bounds = [blocks * i // partitions for i in range(partitions)]
    return [
        BlockRange(first, bounds[i + 1] if i + 1 < partitions else None)
        for i, first in enumerate(bounds)
    ]


def table_parts(snapshot: ExportedSnapshot, partitions: int) -> list[TablePart]:
    """The partitions workers read, all from `snapshot`."""
    ranges = block_ranges(snapshot.blocks, partitions)
    return [
        TablePart(snapshot.snapshot_id, part.condition(), share=1.0 / len(ranges))
        for part in ranges
    ]
