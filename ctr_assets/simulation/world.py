"""A deterministic demo world: video ads, a hidden true CTR, outcomes, purchases, drift.

Each simulated day launches a batch of videos whose features follow realistic ranges and
correlations (short vertical videos on TikTok, long landscape ones on YouTube). A hidden
function of those features gives each video's true CTR; impressions are bought with the
daily budget, clicks and conversions are drawn from the truth. From `drift_day` on, one
platform's CTR shifts by `drift_factor`, so a model trained before that day goes stale.

Everything a day holds is drawn from a generator seeded by `(seed, day)`, so any day can
be regenerated alone and the same spec always gives the same world.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

import numpy as np
import pyarrow as pa

from ctr_assets.data.features import OBJECTIVES, PLATFORMS

_PLATFORM_SHARE = np.array([0.35, 0.25, 0.20, 0.12, 0.08])
_PLATFORM_EFFECT = np.array([0.45, 0.25, -0.10, -0.20, 0.10])
_OBJECTIVE_SHARE = np.array([0.30, 0.30, 0.30, 0.10])
_OBJECTIVE_EFFECT = np.array([-0.15, 0.20, 0.05, 0.0])
_CONVERSION_RATE = np.array([0.003, 0.004, 0.012, 0.008])
# Aspect ratio per platform: ("9:16", "1:1", "4:5", "16:9") probabilities.
_ASPECT_BY_PLATFORM = np.array(
    [
        [0.90, 0.04, 0.04, 0.02],  # tiktok
        [0.55, 0.15, 0.25, 0.05],  # instagram
        [0.15, 0.05, 0.00, 0.80],  # youtube
        [0.20, 0.35, 0.30, 0.15],  # facebook
        [0.95, 0.03, 0.02, 0.00],  # snapchat
    ]
)
_ASPECTS = np.array(["9:16", "1:1", "4:5", "16:9"])
_LONG_FORM = np.array([False, False, True, True, False])  # youtube, facebook

BAD_ROW_KINDS: tuple[str, ...] = (
    "clicks_exceed_impressions",
    "negative_counts",
    "null_target",
    "unknown_category",
    "non_finite_feature",
)


@dataclass(frozen=True)
class WorldSpec:
    """What to simulate. `end` is the end of the last simulated day (UTC)."""

    seed: int = 42
    days: int = 30
    videos: int = 3000
    drift_day: int | None = 15
    drift_platform: str = "tiktok"
    drift_factor: float = 2.0
    bad_row_fraction: float = 0.01
    resolve_after_days: int = 3
    run_days: int = 7
    # None: an outcome is the first `resolve_after_days` of delivery (thousands of
    # impressions). (low, high): it is read after a uniform draw of that many impressions,
    # as for new ads judged early: noisy labels, what the noise-aware gate is for.
    outcome_impressions: tuple[int, int] | None = None
    end: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    )

    def __post_init__(self) -> None:
        if self.days < 1 or self.videos < self.days:
            raise ValueError("need at least one day and at least one video per day")
        if self.drift_platform not in PLATFORMS:
            raise ValueError(f"drift_platform must be one of {PLATFORMS}")
        if self.end.tzinfo is None:
            raise ValueError("end must be timezone-aware")
        if self.outcome_impressions is not None:
            low, high = self.outcome_impressions
            if not 1 <= low <= high:
                raise ValueError(f"outcome impressions need 1 <= low <= high, got {low}, {high}")

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    def day_start(self, day: int) -> datetime:
        return self.start + timedelta(days=day)

    def videos_on(self, day: int) -> int:
        base, extra = divmod(self.videos, self.days)
        return base + (1 if day < extra else 0)


@dataclass(frozen=True)
class Launch:
    """The videos launched on one day, with their hidden truth and their daily results."""

    day: int
    video_id: np.ndarray
    platform: np.ndarray  # index into PLATFORMS
    objective: np.ndarray  # index into OBJECTIVES
    aspect_ratio: np.ndarray  # strings
    duration_s: np.ndarray
    hook_strength: np.ndarray
    scene_count: np.ndarray
    has_captions: np.ndarray
    has_voiceover: np.ndarray
    text_overlay_ratio: np.ndarray
    face_time_ratio: np.ndarray
    music_energy: np.ndarray
    daily_budget: np.ndarray
    audience_size: np.ndarray
    created_at: np.ndarray  # datetime64[us], UTC
    true_ctr: np.ndarray  # what the world really does (drift included)
    undrifted_ctr: np.ndarray  # what it did before the drift
    roas_per_ctr: np.ndarray  # expected ROAS divided by CTR: value of a click over its cost
    missing: dict[str, np.ndarray]  # feature name -> mask of values not recorded
    bad_kind: np.ndarray  # "" or one of BAD_ROW_KINDS
    daily_impressions: np.ndarray  # (n, run_days)
    daily_clicks: np.ndarray
    daily_conversions: np.ndarray
    daily_spend: np.ndarray
    daily_revenue: np.ndarray

    def __len__(self) -> int:
        return len(self.video_id)


class DemoWorld:
    """The world of one spec; days are generated on demand and cached."""

    def __init__(self, spec: WorldSpec) -> None:
        self.spec = spec
        self._launches: dict[int, Launch] = {}

    def launch(self, day: int) -> Launch:
        if not 0 <= day < self.spec.days:
            raise ValueError(f"day {day} outside 0..{self.spec.days - 1}")
        if day not in self._launches:
            self._launches[day] = _generate_launch(self.spec, day)
        return self._launches[day]

    @cached_property
    def drift_platform_index(self) -> int:
        return PLATFORMS.index(self.spec.drift_platform)

    def legacy_ctr(self, launch: Launch) -> np.ndarray:
        """The CTR predicted by the model that served before this project: it knew the world
        as it was before the drift, with some error."""
        rng = np.random.default_rng([self.spec.seed, launch.day, 1])
        return np.clip(launch.undrifted_ctr * rng.lognormal(0.0, 0.15, len(launch)), 0.0, 1.0)

    def roas_forecast(self, launch: Launch, predicted_ctr: np.ndarray) -> np.ndarray:
        """The ROAS the planning tool derives from a CTR prediction, for conversion
        campaigns only (NaN elsewhere): CTR times the planned value of a click over its cost."""
        rng = np.random.default_rng([self.spec.seed, launch.day, 2])
        planned = launch.roas_per_ctr * rng.lognormal(0.0, 0.15, len(launch))
        conversion_goal = launch.objective == OBJECTIVES.index("conversions")
        return np.where(conversion_goal, predicted_ctr * planned, np.nan)


def _generate_launch(spec: WorldSpec, day: int) -> Launch:
    rng = np.random.default_rng([spec.seed, day])
    n = spec.videos_on(day)
    platform = rng.choice(len(PLATFORMS), size=n, p=_PLATFORM_SHARE)
    objective = rng.choice(len(OBJECTIVES), size=n, p=_OBJECTIVE_SHARE)
    long_form = _LONG_FORM[platform]
    duration = np.where(
        long_form, rng.lognormal(np.log(40), 0.5, n), rng.lognormal(np.log(17), 0.4, n)
    ).clip(5, 180)
    hook = rng.beta(2, 2, n)
    scenes = (1 + rng.poisson(duration / 4)).astype(np.int32)
    captions = rng.random(n) < np.where(long_form, 0.45, 0.7)
    voiceover = rng.random(n) < 0.5
    text_overlay = rng.beta(2, 5, n)
    face_time = rng.beta(2, 3, n)
    music = rng.beta(3, 2, n)
    cumulative = _ASPECT_BY_PLATFORM[platform].cumsum(axis=1)
    aspect = _ASPECTS[(rng.random(n)[:, None] > cumulative).sum(axis=1).clip(0, 3)]
    budget = rng.lognormal(np.log(20), 0.7, n).clip(5, 2000)
    tiny = rng.random(n) < 0.03  # test campaigns that never reach 100 impressions
    budget = np.where(tiny, rng.uniform(0.2, 0.6, n), budget)
    audience = rng.lognormal(np.log(1.5e6), 1.0, n).astype(np.int64).clip(1_000, None)
    created = np.datetime64(spec.day_start(day).replace(tzinfo=None), "us") + (
        rng.uniform(0, 86_400e6, n).astype("timedelta64[us]")
    )

    vertical = aspect == "9:16"
    logit = (
        -3.9
        + _PLATFORM_EFFECT[platform]
        + _OBJECTIVE_EFFECT[objective]
        + 2.0 * (hook - 0.5)
        + 0.25 * captions
        + 0.10 * voiceover
        - 0.012 * (duration - 20).clip(-15, 100)
        + 0.6 * face_time
        - 2.0 * (text_overlay - 0.2) ** 2
        + 0.3 * (music - 0.5)
        + np.where(~long_form & vertical, 0.15, 0.0)
        + np.where(~long_form & (aspect == "16:9"), -0.30, 0.0)
        - 0.05 * np.log(audience / 1.5e6)
    )
    undrifted = 1.0 / (1.0 + np.exp(-logit))
    drifted = (
        (platform == PLATFORMS.index(spec.drift_platform))
        if spec.drift_day is not None and day >= spec.drift_day
        else np.zeros(n, dtype=bool)
    )
    true_ctr = np.where(drifted, (undrifted * spec.drift_factor).clip(0, 0.6), undrifted)

    cpm = rng.lognormal(np.log(10), 0.3, n)
    order_value = rng.lognormal(np.log(35), 0.5, n)
    cvr = _CONVERSION_RATE[objective] * rng.lognormal(0, 0.3, n)
    roas_per_ctr = cvr * order_value * 1000 / cpm

    days = spec.run_days
    impressions = np.floor(
        (budget / cpm * 1000)[:, None] * rng.lognormal(0, 0.2, (n, days))
    ).astype(np.int64)
    bad_kind = np.full(n, "", dtype=object)
    n_bad = rng.binomial(n, spec.bad_row_fraction) if spec.bad_row_fraction > 0 else 0
    if n_bad:
        chosen = rng.choice(n, size=n_bad, replace=False)
        bad_kind[chosen] = [BAD_ROW_KINDS[(day + i) % len(BAD_ROW_KINDS)] for i in range(n_bad)]
        # Bad rows always have enough impressions to be read, so every one is counted.
        impressions[chosen] = np.maximum(impressions[chosen], 200)
    clicks = rng.binomial(impressions, true_ctr[:, None])
    conversions = rng.binomial(clicks, cvr[:, None].clip(0, 1))
    spend = impressions * cpm[:, None] / 1000
    revenue = conversions * order_value[:, None]

    missing = {
        "music_energy": rng.random(n) < 0.03,
        "scene_count": rng.random(n) < 0.02,
        "has_voiceover": rng.random(n) < 0.02,
    }
    ids = np.array([f"v{spec.seed}-{day:04d}-{i:05d}" for i in range(n)], dtype=object)
    return Launch(
        day=day,
        video_id=ids,
        platform=platform,
        objective=objective,
        aspect_ratio=aspect,
        duration_s=duration.round(1),
        hook_strength=hook,
        scene_count=scenes,
        has_captions=captions,
        has_voiceover=voiceover,
        text_overlay_ratio=text_overlay,
        face_time_ratio=face_time,
        music_energy=music,
        daily_budget=budget.round(2),
        audience_size=audience,
        created_at=created,
        true_ctr=true_ctr,
        undrifted_ctr=undrifted,
        roas_per_ctr=roas_per_ctr,
        missing=missing,
        bad_kind=bad_kind,
        daily_impressions=impressions,
        daily_clicks=clicks,
        daily_conversions=conversions,
        daily_spend=spend,
        daily_revenue=revenue,
    )


def _masked(values: np.ndarray, mask: np.ndarray | None, type_: pa.DataType) -> pa.Array:
    return pa.array(values, type=type_, mask=mask)


def videos_table(launch: Launch, active_days: int, updated_at: datetime) -> pa.Table:
    """`videos` rows for one launch after `active_days` days of delivery, bad rows planted."""
    active = max(0, min(active_days, launch.daily_impressions.shape[1]))
    impressions = launch.daily_impressions[:, :active].sum(axis=1)
    clicks = launch.daily_clicks[:, :active].sum(axis=1)
    conversions = launch.daily_conversions[:, :active].sum(axis=1)
    spend = launch.daily_spend[:, :active].sum(axis=1).round(2)
    revenue = launch.daily_revenue[:, :active].sum(axis=1).round(2)
    platform = np.array(PLATFORMS, dtype=object)[launch.platform]
    hook = launch.hook_strength.copy()

    bad = launch.bad_kind
    clicks = np.where(bad == "clicks_exceed_impressions", impressions + 7, clicks)
    impressions = np.where(bad == "negative_counts", -impressions, impressions)
    platform = np.where(bad == "unknown_category", "myspace", platform)
    hook = np.where(bad == "non_finite_feature", np.nan, hook)
    clicks_null = bad == "null_target"

    n = len(launch)
    return pa.table(
        {
            "video_id": pa.array(launch.video_id, pa.string()),
            "platform": pa.array(platform, pa.string()),
            "objective": pa.array(np.array(OBJECTIVES, dtype=object)[launch.objective]),
            "duration_s": pa.array(launch.duration_s, pa.float64()),
            "hook_strength": pa.array(hook, pa.float64(), from_pandas=False),
            "scene_count": _masked(launch.scene_count, launch.missing["scene_count"], pa.int32()),
            "has_captions": pa.array(launch.has_captions, pa.bool_()),
            "has_voiceover": _masked(
                launch.has_voiceover, launch.missing["has_voiceover"], pa.bool_()
            ),
            "text_overlay_ratio": pa.array(launch.text_overlay_ratio, pa.float64()),
            "face_time_ratio": pa.array(launch.face_time_ratio, pa.float64()),
            "music_energy": _masked(
                launch.music_energy, launch.missing["music_energy"], pa.float64()
            ),
            "aspect_ratio": pa.array(launch.aspect_ratio.astype(object), pa.string()),
            "daily_budget": pa.array(launch.daily_budget, pa.float64()),
            "audience_size": pa.array(launch.audience_size, pa.int64()),
            "impressions": pa.array(impressions, pa.int64()),
            "clicks": _masked(clicks, clicks_null, pa.int64()),
            "conversions": pa.array(conversions, pa.int64()),
            "spend": pa.array(spend, pa.float64()),
            "revenue": pa.array(revenue, pa.float64()),
            "created_at": pa.array(launch.created_at, pa.timestamp("us", tz="UTC")),
            "updated_at": pa.array([updated_at] * n, pa.timestamp("us", tz="UTC")),
        }
    )


def predictions_table(
    launch: Launch, predicted_ctr: np.ndarray, predicted_roas: np.ndarray, model_version: str
) -> pa.Table:
    """`prediction_records` rows: one prediction per real video, made minutes after launch.
    Planted bad rows get none: they stand for broken upstream records, not for videos."""
    real = launch.bad_kind == ""
    predicted_at = launch.created_at[real] + np.timedelta64(5, "m")
    roas = predicted_roas[real]
    return pa.table(
        {
            "video_id": pa.array(launch.video_id[real], pa.string()),
            "model_version": pa.array([model_version] * int(real.sum()), pa.string()),
            "predicted_ctr": pa.array(predicted_ctr[real], pa.float64()),
            "predicted_roas": pa.array(roas, pa.float64(), mask=np.isnan(roas)),
            "predicted_at": pa.array(predicted_at, pa.timestamp("us", tz="UTC")),
        }
    )


def outcomes_table(launch: Launch, spec: WorldSpec) -> pa.Table:
    """The outcome of each real video, known at the end of its `resolve_after_days` days:
    over those days' delivery, or (with `spec.outcome_impressions`) over its first few
    impressions, clicks drawn from the video's true CTR."""
    real = launch.bad_kind == ""
    days = spec.resolve_after_days
    impressions = launch.daily_impressions[real, :days].sum(axis=1)
    clicks = launch.daily_clicks[real, :days].sum(axis=1)
    spend = launch.daily_spend[real, :days].sum(axis=1)
    revenue = launch.daily_revenue[real, :days].sum(axis=1)
    if spec.outcome_impressions is not None:
        rng = np.random.default_rng([spec.seed, launch.day, 4])
        low, high = spec.outcome_impressions
        impressions = rng.integers(low, high + 1, int(real.sum()))
        clicks = rng.binomial(impressions, launch.true_ctr[real])
    seen = impressions > 0
    actual_ctr = np.where(seen, clicks / np.maximum(impressions, 1), np.nan)
    conversion_goal = launch.objective[real] == OBJECTIVES.index("conversions")
    roas = np.where(conversion_goal & (spend > 0), revenue / np.maximum(spend, 1e-9), np.nan)
    resolved_at = spec.day_start(launch.day + days)
    return pa.table(
        {
            "video_id": pa.array(launch.video_id[real], pa.string()),
            "actual_ctr": pa.array(actual_ctr, pa.float64(), mask=~seen),
            "actual_impressions": pa.array(impressions, pa.int64()),
            "actual_roas": pa.array(roas, pa.float64(), mask=np.isnan(roas)),
            "resolved_at": pa.array([resolved_at] * int(real.sum()), pa.timestamp("us", tz="UTC")),
        }
    )


def purchases_table(launch: Launch, spec: WorldSpec, delivery_day: int) -> pa.Table:
    """One `purchase_signals` row per conversion on the launch's `delivery_day`-th day."""
    real = np.flatnonzero(launch.bad_kind == "")
    counts = launch.daily_conversions[real, delivery_day]
    rng = np.random.default_rng([spec.seed, launch.day, 3, delivery_day])
    video_idx = np.repeat(real, counts)
    sequence = np.concatenate([np.arange(c) for c in counts]) if counts.sum() else np.array([])
    n = len(video_idx)
    order_value = launch.daily_revenue[video_idx, delivery_day] / np.maximum(
        launch.daily_conversions[video_idx, delivery_day], 1
    )
    amount = (order_value * rng.lognormal(0, 0.1, n)).round(2)
    day_start = np.datetime64(spec.day_start(launch.day + delivery_day).replace(tzinfo=None), "us")
    occurred = day_start + rng.uniform(0, 86_400e6, n).astype("timedelta64[us]")
    received = occurred + rng.uniform(1e6, 600e6, n).astype("timedelta64[us]")
    ids = [
        f"sim{spec.seed}-{launch.video_id[v]}-d{delivery_day}-{s}"
        for v, s in zip(video_idx, sequence.astype(int), strict=True)
    ]
    currency = np.where(rng.random(n) < 0.8, "USD", "EUR").astype(object)
    return pa.table(
        {
            "transaction_id": pa.array(ids, pa.string()),
            "video_id": pa.array(launch.video_id[video_idx], pa.string()),
            "amount": pa.array(amount, pa.float64()),
            "currency": pa.array(currency, pa.string()),
            "occurred_at": pa.array(occurred, pa.timestamp("us", tz="UTC")),
            "received_at": pa.array(received, pa.timestamp("us", tz="UTC")),
        }
    )
