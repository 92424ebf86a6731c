"""One purchase tick of the daemon's sensor loop in a process of its own, which Dagster's
crash point kills with SIGKILL (test helper).

Usage: python -m ctr_assets_tests.faults.daemon_iteration CRASH_POINT CODE_SERVER_PORT
(the instance is DAGSTER_HOME's; the code location is the test's code server). Exits 0
if the tick ended without reaching the crash point.
"""

import signal
import sys

import dagster as dg
from dagster._core.workspace.load_target import GrpcServerTarget

from ctr_assets_tests.faults.daemon_ticks import daemon_workspace, tick_once

if __name__ == "__main__":
    crash_point, port = sys.argv[1], int(sys.argv[2])
    target = GrpcServerTarget(host="127.0.0.1", port=port, socket=None, location_name="ctr_assets")
    with (
        dg.DagsterInstance.get() as instance,
        daemon_workspace(instance, target) as workspace,
    ):
        tick_once(workspace, instance, crash_at={crash_point: signal.SIGKILL})
