"""Small registered champions for the benchmark databases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ctr_assets.data.training_frame import RowSelection, screen_training_table, training_query
from ctr_assets.db.connection import Database
from ctr_assets.ml.evaluation import score_on_holdout
from ctr_assets.ml.training import TrainingParams, train_ctr_model
from ctr_assets.models.registry import ModelRegistry


def register_small_champion(
    db: Database, models: Path, created_before: datetime, reason: str, rows: int = 20_000
) -> str:
    """Trains a quick model on up to `rows` videos created before `created_before`,
    registers it and makes it champion; returns its version."""
    query = (
        f"SELECT * FROM ({training_query(RowSelection(100))}) eligible "
        f"WHERE created_at < '{created_before.isoformat()}' ORDER BY video_id LIMIT {rows}"
    )
    with db.connect_arrow() as conn, conn.cursor() as cur:
        cur.execute(query)
        table = cur.fetch_arrow_table()
    if table.num_rows < 200:
        raise RuntimeError(f"only {table.num_rows} videos before {created_before}: too few")
    frame = screen_training_table(table).frame
    trained = train_ctr_model(frame, TrainingParams(num_boost_round=50))
    score = score_on_holdout(trained.booster, frame)
    registry = ModelRegistry(db, models)
    current = registry.champion()
    version = registry.register(
        trained, score, {"bench": reason, "trained_rows": len(frame)}, datetime.now(UTC)
    )
    registry.promote(version.version, current.version if current else None, f"bench: {reason}")
    return version.version


def champion_version(db: Database) -> str:
    registry = ModelRegistry(db, Path("/nonexistent"))  # only reads the champion's row
    champion = registry.champion()
    if champion is None:
        raise RuntimeError("the benchmark database has no champion; run with --regenerate")
    return champion.version
