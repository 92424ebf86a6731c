"""Training frames of the demo world built in memory, with each video's true CTR.

The simulator knows what the world really does (`Launch.true_ctr`); a frame built here
carries it beside the observed CTR, so a model's hold-out error can be taken against the
truth rather than against noisy clicks. No database: the rows are screened exactly as
`load_training_frame` screens them (`screen_training_table`), after the same
`impressions >= min_impressions` cut.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ctr_assets.data.training_frame import screen_training_table
from ctr_assets.simulation.populate import delivered_days
from ctr_assets.simulation.world import DemoWorld, Launch, WorldSpec, videos_table


@dataclass(frozen=True)
class SimulatedFrame:
    frame: pd.DataFrame
    true_ctr: np.ndarray  # one per frame row


def _fewer_impressions(launch: Launch, scale: float, seed: int) -> Launch:
    """The launch bought `scale` times the impressions; clicks drawn again from the truth."""
    rng = np.random.default_rng([seed, launch.day, 7])
    impressions = np.floor(launch.daily_impressions * scale).astype(np.int64)
    clicks = rng.binomial(impressions, launch.true_ctr[:, None])
    return replace(launch, daily_impressions=impressions, daily_clicks=clicks)


def simulated_frame(
    spec: WorldSpec, impression_scale: float = 1.0, min_impressions: int = 100
) -> SimulatedFrame:
    """The world's training frame as of its end, and the true CTR of every row."""
    last_day = spec.days - 1
    tables, truth = [], {}
    for day in range(spec.days):
        launch = DemoWorld(spec).launch(day)
        if impression_scale != 1.0:
            launch = _fewer_impressions(launch, impression_scale, spec.seed)
        table = videos_table(launch, delivered_days(spec, launch, last_day), spec.end)
        tables.append(table.filter(pc.greater_equal(table["impressions"], min_impressions)))
        truth.update(zip(launch.video_id, launch.true_ctr, strict=True))
    data = screen_training_table(pa.concat_tables(tables))
    true_ctr = np.array([truth[video_id] for video_id in data.frame["video_id"]])
    return SimulatedFrame(data.frame, true_ctr)
