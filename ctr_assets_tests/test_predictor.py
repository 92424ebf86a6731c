"""The champion as a predictor: it predicts with the champion and records every prediction."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ctr_assets.data.training_frame import feature_frame
from ctr_assets.db.connection import Database
from ctr_assets.ml.evaluation import predict_ctr, score_on_holdout
from ctr_assets.ml.training import TrainedModel
from ctr_assets.models.registry import ModelRegistry, ModelVersion
from ctr_assets.serving.predictor import CTRPredictor, NoChampionError
from ctr_assets.simulation.world import DemoWorld, videos_table
from ctr_assets_tests.world_specs import small_world

SPEC = small_world()
WORLD = DemoWorld(SPEC)


def _videos(day: int) -> pa.Table:
    return videos_table(WORLD.launch(day), 0, SPEC.end)


@pytest.fixture
def registry(db: Database, tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(db, tmp_path / "models")


def _register(
    registry: ModelRegistry, trained: TrainedModel, frame: pd.DataFrame, minutes: int = 0
) -> ModelVersion:
    score = score_on_holdout(trained.booster, frame)
    return registry.register(trained, score, {}, SPEC.start + timedelta(minutes=minutes))


@pytest.fixture
def champion(
    registry: ModelRegistry, boosters: tuple[TrainedModel, TrainedModel], frame: pd.DataFrame
) -> ModelVersion:
    model = _register(registry, boosters[0], frame)
    registry.promote(model.version, None, "first model")
    return model


def _records(db: Database) -> pd.DataFrame:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT video_id, model_version, predicted_ctr, predicted_roas, predicted_at, "
            "actual_ctr, resolved_at FROM prediction_records ORDER BY id"
        )
        columns = [c.name for c in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def test_without_a_champion_prediction_fails_and_says_what_to_do(
    registry: ModelRegistry, db: Database
) -> None:
    predictor = CTRPredictor(registry)
    videos = _videos(0)

    with pytest.raises(NoChampionError, match=r"no champion.*ctr-assets check-retrain"):
        predictor.predict(videos)
    with pytest.raises(NoChampionError):
        predictor.predict_and_record(videos, SPEC.start)
    assert len(_records(db)) == 0


def test_predict_and_record_writes_one_row_per_video_with_the_champions_version(
    registry: ModelRegistry, champion: ModelVersion, db: Database
) -> None:
    videos = _videos(3)
    predicted_at = SPEC.day_start(3) + timedelta(hours=1)
    predictor = CTRPredictor(registry)

    returned = predictor.predict_and_record(videos, predicted_at)

    records = _records(db)
    assert videos.num_rows > 0
    assert len(records) == videos.num_rows
    assert sorted(records["video_id"]) == sorted(videos["video_id"].to_pylist())
    assert set(records["model_version"]) == {champion.version}
    assert returned.model_version == champion.version
    ctr = records["predicted_ctr"].to_numpy(dtype=float)
    assert np.all((ctr >= 0.0) & (ctr <= 1.0))
    assert np.unique(ctr).size > 1  # a real model, not a constant
    by_video = dict(zip(records["video_id"], ctr, strict=True))
    again = predictor.predict(videos)
    np.testing.assert_array_equal([by_video[v] for v in again.video_id], again.predicted_ctr)
    np.testing.assert_array_equal(returned.predicted_ctr, again.predicted_ctr)
    assert records["predicted_roas"].isna().all()
    assert records["actual_ctr"].isna().all()
    assert records["resolved_at"].isna().all()
    assert set(records["predicted_at"]) == {predicted_at}


def test_predicted_roas_is_recorded_and_nan_becomes_null(
    registry: ModelRegistry, champion: ModelVersion, db: Database
) -> None:
    videos = _videos(3)
    roas = np.where(np.arange(videos.num_rows) % 2 == 0, 1.5, np.nan)

    predictions = CTRPredictor(registry).predict_and_record(videos, SPEC.day_start(3), roas)

    records = _records(db).set_index("video_id")
    stored = records.loc[list(predictions.video_id), "predicted_roas"].to_numpy(dtype=float)
    np.testing.assert_array_equal(stored, roas)  # NaN where NULL
    assert records["predicted_roas"].isna().sum() == np.isnan(roas).sum()


def test_after_a_new_champion_is_promoted_the_predictor_uses_it(
    registry: ModelRegistry,
    champion: ModelVersion,
    boosters: tuple[TrainedModel, TrainedModel],
    frame: pd.DataFrame,
    db: Database,
) -> None:
    predictor = CTRPredictor(registry)
    day_3, day_4 = _videos(3), _videos(4)
    predictor.predict_and_record(day_3, SPEC.day_start(3))

    challenger = _register(registry, boosters[1], frame, minutes=1)
    registry.promote(challenger.version, champion.version, "better")
    returned = predictor.predict_and_record(day_4, SPEC.day_start(4))

    records = _records(db)
    old_rows = records[records["video_id"].isin(day_3["video_id"].to_pylist())]
    new_rows = records[records["video_id"].isin(day_4["video_id"].to_pylist())]
    assert set(old_rows["model_version"]) == {champion.version}
    assert set(new_rows["model_version"]) == {challenger.version}
    assert returned.model_version == challenger.version
    # The new file's predictions, not only its name.
    expected = predict_ctr(boosters[1].booster, feature_frame(day_4))
    np.testing.assert_array_equal(new_rows["predicted_ctr"].to_numpy(dtype=float), expected)
    assert not np.array_equal(expected, predict_ctr(boosters[0].booster, feature_frame(day_4)))


def _per_row_datetime64(n: int) -> np.ndarray:
    start = np.datetime64(SPEC.day_start(5).replace(tzinfo=None), "us")
    return start + np.arange(n) * np.timedelta64(90, "s")


def _per_row_aware_datetimes(n: int) -> np.ndarray:
    plus_two = timezone(timedelta(hours=2))
    start = SPEC.day_start(5).astimezone(plus_two)
    return np.array([start + timedelta(seconds=90 * i) for i in range(n)], dtype=object)


@pytest.mark.parametrize(
    "make_predicted_at",
    [
        lambda n: SPEC.day_start(5) + timedelta(minutes=5),
        lambda n: (SPEC.day_start(5) + timedelta(minutes=5)).astimezone(
            timezone(timedelta(hours=-5))
        ),
        _per_row_datetime64,
        _per_row_aware_datetimes,
    ],
    ids=["one_utc_datetime", "one_datetime_other_zone", "datetime64_array", "aware_array"],
)
def test_predicted_at_is_one_time_for_all_or_one_per_row(
    registry: ModelRegistry, champion: ModelVersion, db: Database, make_predicted_at
) -> None:
    videos = _videos(5)
    predicted_at = make_predicted_at(videos.num_rows)

    predictions = CTRPredictor(registry).predict_and_record(videos, predicted_at)

    records = _records(db).set_index("video_id")
    stored = [records.loc[v, "predicted_at"] for v in predictions.video_id]
    if isinstance(predicted_at, datetime):
        expected = [predicted_at] * videos.num_rows
    else:  # datetime64 values are UTC wall times
        expected = [t.to_pydatetime() for t in pd.to_datetime(predicted_at, utc=True)]
        assert len(set(expected)) == videos.num_rows
    assert stored == expected
    assert all(t.utcoffset() is not None for t in stored)


def test_a_per_row_time_array_of_the_wrong_length_records_nothing(
    registry: ModelRegistry, champion: ModelVersion, db: Database
) -> None:
    videos = _videos(5)
    with pytest.raises(ValueError, match="length"):
        CTRPredictor(registry).predict_and_record(videos, _per_row_datetime64(videos.num_rows - 1))
    assert len(_records(db)) == 0
