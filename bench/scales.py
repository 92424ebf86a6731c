"""How big each benchmark runs at each scale, and how many times."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Scale:
    name: str
    load_videos: tuple[int, ...]  # videos in the database the training frame is read from
    load_repeats: int
    signal_rows: tuple[int, int]  # rows in prediction_records and purchase_signals: small, large
    sensor_ticks: int
    sql_repeats: int
    training_videos: int  # the frame the training variants are fitted on
    training_repeats: int
    retrain_videos: tuple[int, ...]  # one whole retrain per size and repetition
    retrain_repeats: int
    purchase_load_signals: int  # signals the 4 writers insert while the sensor ticks
    purchase_load_daemon: bool  # a real dagster-daemon runs the loop during the load
    # Whether the targets mean anything at these sizes (smoke: fixed costs dominate).
    targets_apply: bool = True


_SMOKE = Scale(
    name="smoke",
    load_videos=(20_000,),
    load_repeats=2,
    signal_rows=(5_000, 50_000),
    sensor_ticks=5,
    sql_repeats=3,
    training_videos=5_000,
    training_repeats=1,
    retrain_videos=(5_000, 20_000),
    retrain_repeats=1,
    purchase_load_signals=5_000,
    purchase_load_daemon=False,
    targets_apply=False,
)
_ONE_MILLION = Scale(
    name="1m",
    load_videos=(1_000_000,),
    load_repeats=3,
    signal_rows=(100_000, 10_000_000),
    sensor_ticks=40,
    sql_repeats=7,
    training_videos=100_000,
    training_repeats=3,
    retrain_videos=(100_000, 1_000_000),
    retrain_repeats=2,
    purchase_load_signals=100_000,
    purchase_load_daemon=True,
)
# The 1m scale plus the 5M load and the 5M retrain.
_FULL = replace(
    _ONE_MILLION,
    name="full",
    load_videos=(1_000_000, 5_000_000),
    retrain_videos=(100_000, 1_000_000, 5_000_000),
)

SCALES: dict[str, Scale] = {scale.name: scale for scale in (_SMOKE, _ONE_MILLION, _FULL)}
