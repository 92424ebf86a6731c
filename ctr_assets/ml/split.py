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
    fraction = _checked(fraction)
    (position,) = _unit_intervals(video_ids, (salt,))
    return position < fraction


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
    validation_fraction = _checked(validation_fraction)
    holdout_position, validation_position = _unit_intervals(video_ids, (HOLDOUT_SALT, salt))
    holdout = holdout_position < HOLDOUT_FRACTION
    validation = (validation_position < validation_fraction) & ~holdout
    return TrainingSplit(training=~holdout & ~validation, validation=validation, holdout=holdout)


# Ids are hashed this many at a time: pandas' SipHash reads Python str objects, and only
# one block of them exists at once (a 5M-video frame's ids as objects would be ~350 MB).
_BLOCK = 65_536


def _unit_intervals(video_ids: pd.Series, salts: tuple[str, ...]) -> list[np.ndarray]:
    """Each id's SipHash, keyed by each salt, as floats in [0, 1), one array per salt."""
    missing = int(video_ids.isna().sum())
    if missing:
        raise ValueError(f"{missing} rows have no video_id; drop or repair them before splitting")
    keys = [hashlib.sha256(salt.encode()).hexdigest()[:16] for salt in salts]
    positions = [np.empty(len(video_ids), dtype=np.float64) for _ in salts]
    for start in range(0, len(video_ids), _BLOCK):
        block = video_ids.iloc[start : start + _BLOCK].astype(str).to_numpy(dtype=object)
        for key, position in zip(keys, positions, strict=True):
            hashes = pd.util.hash_array(block, hash_key=key, categorize=False)
            # The top 53 bits fit a float64 exactly.
            position[start : start + len(block)] = (hashes >> np.uint64(11)) / float(2**53)
    return positions


def _checked(fraction: float) -> float:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"a split fraction must lie strictly between 0 and 1, got {fraction}")
    return fraction
