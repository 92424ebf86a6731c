"""Which videos the model may learn from, and which are kept back to judge it.

Rows are assigned by a keyed hash of `video_id`, so a video lands on the same side in
every run, process and row order. Champion and challenger are scored on the same
held-out videos, and a new model never trains on the videos it is judged on; this module
is the single definition of that hold-out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

HOLDOUT_FRACTION = 0.2
HOLDOUT_SALT = "holdout"
VALIDATION_SALT = "validation"


def holdout_mask(
    video_ids: pd.Series, fraction: float = HOLDOUT_FRACTION, salt: str = HOLDOUT_SALT
) -> np.ndarray:
    """True for the videos kept back for scoring, about `fraction` of them."""
    return _unit_interval(_id_strings(video_ids), salt) < _checked(fraction)


@dataclass(frozen=True)
class TrainingSplit:
    """Row masks over one frame: three disjoint parts that cover every row."""

    training: np.ndarray
    validation: np.ndarray
    holdout: np.ndarray


def training_split(
    video_ids: pd.Series, validation_fraction: float, salt: str = VALIDATION_SALT
) -> TrainingSplit:
    """Splits off the hold-out, then about `validation_fraction` of the rest for early stopping.

    The validation choice uses a second, independent hash, so it is unrelated to the hold-out.
    """
    ids = _id_strings(video_ids)
    holdout = _unit_interval(ids, HOLDOUT_SALT) < HOLDOUT_FRACTION
    validation = (_unit_interval(ids, salt) < _checked(validation_fraction)) & ~holdout
    return TrainingSplit(training=~holdout & ~validation, validation=validation, holdout=holdout)


def _id_strings(video_ids: pd.Series) -> np.ndarray:
    """The ids as a numpy object array of str, the fast path for pandas' hashing."""
    missing = int(video_ids.isna().sum())
    if missing:
        raise ValueError(f"{missing} rows have no video_id; drop or repair them before splitting")
    return video_ids.astype(str).to_numpy(dtype=object)


def _unit_interval(ids: np.ndarray, salt: str) -> np.ndarray:
    """Each id's SipHash, keyed by the salt, as a float in [0, 1)."""
    key = hashlib.sha256(salt.encode()).hexdigest()[:16]
    hashes = pd.util.hash_array(ids, hash_key=key, categorize=False)
    # The top 53 bits fit a float64 exactly.
    return (hashes >> np.uint64(11)).astype(np.float64) / float(2**53)


def _checked(fraction: float) -> float:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"a split fraction must lie strictly between 0 and 1, got {fraction}")
    return fraction
