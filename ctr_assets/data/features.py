"""The model's feature contract: which `videos` columns it reads and how they are typed.

Categories are fixed lists, not learned from the data, so that a video is encoded the same
way at training and at prediction time; a value outside them is a bad row.
"""

from __future__ import annotations

PLATFORMS: tuple[str, ...] = ("tiktok", "instagram", "youtube", "facebook", "snapchat")
OBJECTIVES: tuple[str, ...] = ("awareness", "traffic", "conversions", "app_installs")
ASPECT_RATIOS: tuple[str, ...] = ("9:16", "1:1", "4:5", "16:9")

CATEGORICAL_FEATURES: dict[str, tuple[str, ...]] = {
    "platform": PLATFORMS,
    "objective": OBJECTIVES,
    "aspect_ratio": ASPECT_RATIOS,
}

# Loaded as float64; NULL becomes NaN, which XGBoost treats as missing.
NUMERIC_FEATURES: tuple[str, ...] = (
    "duration_s",
    "hook_strength",
    "scene_count",
    "text_overlay_ratio",
    "face_time_ratio",
    "music_energy",
    "daily_budget",
    "audience_size",
)
# Loaded as float64 1.0 / 0.0, NULL as NaN.
BOOLEAN_FEATURES: tuple[str, ...] = ("has_captions", "has_voiceover")

FEATURES: tuple[str, ...] = (*NUMERIC_FEATURES, *BOOLEAN_FEATURES, *CATEGORICAL_FEATURES)
TARGET = "ctr"
