from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctr_assets.ml.evaluation import predict_ctr
from ctr_assets.ml.model_files import ModelFileError, load_model, new_version, save_model
from ctr_assets.ml.training import TrainedModel


def test_saved_and_reloaded_model_predicts_identically(
    trained_model: TrainedModel, training_frame: pd.DataFrame, tmp_path: Path
) -> None:
    saved = save_model(trained_model.booster, tmp_path, "ctr-test")
    reloaded = load_model(saved.path, saved.sha256)
    np.testing.assert_array_equal(
        predict_ctr(reloaded, training_frame), predict_ctr(trained_model.booster, training_frame)
    )


def test_saved_file_is_xgboost_json_named_by_version(
    trained_model: TrainedModel, tmp_path: Path
) -> None:
    saved = save_model(trained_model.booster, tmp_path / "models", "ctr-test")
    content = saved.path.read_bytes()
    assert saved.path == tmp_path / "models" / "ctr-test.json"
    assert content.startswith(b'{"learner"')
    assert saved.sha256 == hashlib.sha256(content).hexdigest()
    assert [p.name for p in saved.path.parent.iterdir()] == ["ctr-test.json"]  # no temp left


def test_tampered_file_is_refused(trained_model: TrainedModel, tmp_path: Path) -> None:
    saved = save_model(trained_model.booster, tmp_path, "ctr-test")
    saved.path.write_bytes(saved.path.read_bytes().replace(b"learner", b"learnxr", 1))
    with pytest.raises(ModelFileError) as raised:
        load_model(saved.path, saved.sha256)
    message = str(raised.value)
    assert str(saved.path) in message
    assert saved.sha256 in message
    assert hashlib.sha256(saved.path.read_bytes()).hexdigest() in message


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "absent.json", "0" * 64)


def test_a_version_is_never_overwritten(trained_model: TrainedModel, tmp_path: Path) -> None:
    saved = save_model(trained_model.booster, tmp_path, "ctr-test")
    with pytest.raises(ModelFileError, match="never overwritten"):
        save_model(trained_model.booster, tmp_path, "ctr-test")
    assert hashlib.sha256(saved.path.read_bytes()).hexdigest() == saved.sha256


@pytest.mark.parametrize("version", ["", "..", "../escape", "nested/version"])
def test_a_version_must_be_a_plain_name(
    version: str, trained_model: TrainedModel, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        save_model(trained_model.booster, tmp_path, version)


def test_new_version_is_utc_stamped_and_unique() -> None:
    now = datetime(2026, 11, 27, 7, 24, tzinfo=timezone(timedelta(hours=1)))
    versions = {new_version(now) for _ in range(50)}
    assert len(versions) == 50
    assert all(re.fullmatch(r"ctr-20261127T062400Z-[0-9a-f]{6}", v) for v in versions)


def test_new_versions_sort_by_time() -> None:
    earlier = datetime(2026, 11, 27, 6, 24, 0, tzinfo=UTC)
    later_ones = [earlier + timedelta(seconds=s) for s in (1, 3600, 86_400 * 40)]
    versions = [new_version(t) for t in (earlier, *later_ones)]
    assert versions == sorted(versions)


def test_new_version_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        new_version(datetime(2026, 11, 27, 6, 24))
