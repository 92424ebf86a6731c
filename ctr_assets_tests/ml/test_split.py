from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctr_assets.ml.split import holdout_mask, training_split

# The hold-out rows among video-0 .. video-39, as computed when the split was defined.
PINNED_HOLDOUT_OF_40 = [6, 16, 22, 35, 38]


def _ids(count: int) -> pd.Series:
    return pd.Series([f"video-{i}" for i in range(count)])


def test_holdout_is_deterministic() -> None:
    ids = _ids(5000)
    np.testing.assert_array_equal(holdout_mask(ids), holdout_mask(ids.copy()))


def test_holdout_is_pinned_across_processes_and_versions() -> None:
    # If a library upgrade changes the hash, a new model could train on videos the champion
    # was judged on; this pin makes such a change loud.
    assert np.flatnonzero(holdout_mask(_ids(40))).tolist() == PINNED_HOLDOUT_OF_40


def test_holdout_does_not_depend_on_row_order() -> None:
    ids = _ids(5000)
    shuffled = ids.sample(frac=1.0, random_state=3).reset_index(drop=True)
    by_id = dict(zip(ids, holdout_mask(ids), strict=True))
    expected = np.array([by_id[video_id] for video_id in shuffled])
    np.testing.assert_array_equal(holdout_mask(shuffled), expected)


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
def test_holdout_fraction_is_roughly_right(fraction: float) -> None:
    assert holdout_mask(_ids(20_000), fraction=fraction).mean() == pytest.approx(fraction, abs=0.02)


def test_holdout_changes_with_salt() -> None:
    ids = _ids(5000)
    assert (holdout_mask(ids, salt="holdout") != holdout_mask(ids, salt="other")).mean() > 0.2


def test_training_split_parts_are_disjoint_and_cover_every_row() -> None:
    split = training_split(_ids(20_000), validation_fraction=0.15)
    parts = np.stack([split.training, split.validation, split.holdout])
    assert (parts.sum(axis=0) == 1).all()


def test_training_split_shares_the_holdout_and_sizes_validation() -> None:
    ids = _ids(20_000)
    split = training_split(ids, validation_fraction=0.15)
    np.testing.assert_array_equal(split.holdout, holdout_mask(ids))
    assert split.validation[~split.holdout].mean() == pytest.approx(0.15, abs=0.02)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_fraction_out_of_range_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        holdout_mask(_ids(10), fraction=fraction)


def test_missing_video_id_is_refused() -> None:
    with pytest.raises(ValueError, match="1 rows have no video_id"):
        holdout_mask(pd.Series(["a", None, "c"]))
