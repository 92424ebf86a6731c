"""The feature matrix and target the model sees, checked against the feature contract.

Training and prediction both go through here, so a frame that would be encoded
differently (a missing column, a category list that drifted) fails before XGBoost sees it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctr_assets.data.features import CATEGORICAL_FEATURES, FEATURES, TARGET


def feature_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Exactly the columns in FEATURES, in that order."""
    missing = [name for name in FEATURES if name not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks feature columns {missing}; build it with FEATURES")
    for name, categories in CATEGORICAL_FEATURES.items():
        dtype = frame[name].dtype
        if not isinstance(dtype, pd.CategoricalDtype) or tuple(dtype.categories) != categories:
            raise ValueError(
                f"column {name!r} must be a pandas Categorical with categories {categories} "
                f"from ctr_assets.data.features, got {dtype}"
            )
    return frame.loc[:, list(FEATURES)]


def target(frame: pd.DataFrame) -> np.ndarray:
    """The CTR labels; a rate outside [0, 1] or a missing one is an upstream bug."""
    if TARGET not in frame.columns:
        raise ValueError(f"the frame lacks the target column {TARGET!r}")
    labels = frame[TARGET].to_numpy(dtype=np.float64)
    invalid = int(np.count_nonzero(~((labels >= 0.0) & (labels <= 1.0))))
    if invalid:
        raise ValueError(
            f"{invalid} rows have a {TARGET!r} that is missing or outside [0, 1]; "
            "screen them out when building the training frame"
        )
    return labels
