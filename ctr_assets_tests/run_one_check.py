"""Runs one check in its own process against the instance under DAGSTER_HOME (test helper).

Usage: python -m ctr_assets_tests.run_one_check TRIGGER DATABASE_URL MODEL_DIR AS_OF [SELECTION]
"""

import sys
from datetime import datetime

import dagster as dg

from ctr_assets.db.connection import Database
from ctr_assets.orchestration.run_check import run_check_in_process

if __name__ == "__main__":
    trigger, url, model_dir, as_of, *selection = sys.argv[1:]
    with dg.DagsterInstance.get() as instance:
        run = run_check_in_process(
            instance,
            Database(url),
            trigger=trigger,
            model_dir=model_dir,
            as_of=datetime.fromisoformat(as_of),
            selection=selection[0].split(",") if selection else None,
            log_level="WARNING",
        )
    print(run.run_id, run.record["status"] if run.record else "no record")
