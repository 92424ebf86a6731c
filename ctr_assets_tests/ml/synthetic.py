"""A synthetic training frame with a known CTR function, so ML tests need no database."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctr_assets.data.features import BOOLEAN_FEATURES, CATEGORICAL_FEATURES, NUMERIC_FEATURES

# Effects on the log-odds of a click; the base rate is about 4%.
PLATFORM_EFFECT = {
    "tiktok": 0.5,
    "instagram": 0.2,
    "youtube": -0.3,
    "facebook": -0.4,
    "snapchat": 0.1,
}
OBJECTIVE_EFFECT = {"awareness": -0.2, "traffic": 0.3, "conversions": 0.0, "app_installs": 0.1}
ASPECT_EFFECT = {"9:16": 0.2, "1:1": 0.0, "4:5": 0.05, "16:9": -0.2}
MISSING_FRACTION = 0.03


def hidden_ctr(values: dict[str, np.ndarray]) -> np.ndarray:
    """The true CTR the model should recover: a logistic of a linear score."""
    log_odds = (
        -3.2
        + 1.8 * (values["hook_strength"] - 0.5)
        - 0.015 * (values["duration_s"] - 30.0)
        + 0.8 * (values["face_time_ratio"] - 0.5)
        - 0.5 * (values["text_overlay_ratio"] - 0.3)
        + 0.25 * values["has_captions"]
        + np.vectorize(PLATFORM_EFFECT.get)(values["platform"])
        + np.vectorize(OBJECTIVE_EFFECT.get)(values["objective"])
        + np.vectorize(ASPECT_EFFECT.get)(values["aspect_ratio"])
    )
    return 1.0 / (1.0 + np.exp(-log_odds))


def synthetic_training_frame(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A frame shaped like `load_training_frame`'s, with a few missing feature values."""
    rng = np.random.default_rng(seed)
    values: dict[str, np.ndarray] = {
        "duration_s": rng.uniform(5.0, 90.0, rows),
        "hook_strength": rng.uniform(0.0, 1.0, rows),
        "scene_count": rng.integers(1, 30, rows).astype(np.float64),
        "text_overlay_ratio": rng.uniform(0.0, 1.0, rows),
        "face_time_ratio": rng.uniform(0.0, 1.0, rows),
        "music_energy": rng.uniform(0.0, 1.0, rows),
        "daily_budget": rng.uniform(10.0, 1000.0, rows),
        "audience_size": 10.0 ** rng.uniform(4.0, 7.0, rows),
        "has_captions": rng.integers(0, 2, rows).astype(np.float64),
        "has_voiceover": rng.integers(0, 2, rows).astype(np.float64),
    }
    for name, categories in CATEGORICAL_FEATURES.items():
        values[name] = rng.choice(np.array(categories, dtype=object), rows)
    true_ctr = hidden_ctr(values)
    impressions = rng.integers(2_000, 50_000, rows, dtype=np.int64)
    clicks = rng.binomial(impressions, true_ctr).astype(np.int64)

    frame = pd.DataFrame({"video_id": [f"video-{seed}-{i:06d}" for i in range(rows)]})
    for name in (*NUMERIC_FEATURES, *BOOLEAN_FEATURES):
        column = values[name].copy()
        column[rng.random(rows) < MISSING_FRACTION] = np.nan
        frame[name] = column
    for name, categories in CATEGORICAL_FEATURES.items():
        labels = pd.Series(values[name]).mask(rng.random(rows) < MISSING_FRACTION)
        frame[name] = pd.Categorical(labels, categories=list(categories))
    frame["impressions"] = impressions
    frame["clicks"] = clicks
    frame["ctr"] = clicks / impressions
    return frame
