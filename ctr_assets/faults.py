"""Named points where a fault test can hold the product still, to kill it there.

Inert unless `CTR_FAULT_POINTS` names a directory. Then a process that reaches
`pause_point(name)` while the file `<directory>/<name>` exists (the point is *armed*)
writes its pid to `<directory>/<name>.paused` and sleeps until the arm file is removed,
or until it is killed, which is what the tests in `ctr_assets_tests/faults/` do. Arming
is a file rather than an environment variable so that one long-running code server can
hold a run at a different point each time, and let the next run through.

The points, in the order a check reaches them, and what exists when it pauses there:

- `loading` (`load_training_frame`): the `videos` query streaming; nothing written.
- `training` (`train_ctr_model`): the matrices built, boosting not begun.
- `before_promotion` (`ModelRegistry.promote`): the model file and its version row; no
  `champion_history` row.
- `after_promotion` (`ModelRegistry.promote`): the new champion committed; no decision
  record yet.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

POINTS_DIRECTORY = "CTR_FAULT_POINTS"
POINTS = ("loading", "training", "before_promotion", "after_promotion")
_POLL_SECONDS = 0.05


def pause_point(name: str) -> None:
    """Pauses here while the point `name` is armed (see the module docstring)."""
    directory = os.environ.get(POINTS_DIRECTORY)
    if not directory:
        return
    if name not in POINTS:
        raise ValueError(f"unknown fault point {name!r}; one of {POINTS}")
    armed = Path(directory) / name
    if not armed.exists():
        return
    paused = Path(directory) / f"{name}.paused"
    written = paused.with_name(f".{paused.name}.{os.getpid()}")
    written.write_text(str(os.getpid()))
    written.replace(paused)  # the test reads a whole pid or no file
    while armed.exists():
        time.sleep(_POLL_SECONDS)
