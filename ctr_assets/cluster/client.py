"""Reaching a Dask scheduler, and waiting on it with a deadline.

Every wait on the cluster has a deadline, and a worker that leaves the cluster while it holds
training data fails the step at once, in one line that names it: the old champion keeps
serving.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # distributed is imported when a cluster is used, not with the code location
    from distributed import Client

T = TypeVar("T")
_POLL_SECONDS = 0.5
_LOSS_NOTICED_SECONDS = 3.0  # how long a failure waits for the scheduler to see a lost worker


class ClusterError(RuntimeError):
    """The Dask cluster could not do its part; the message says which part and what to do."""


@dataclass(frozen=True)
class ClusterSettings:
    """Where the scheduler is and how long to wait for it (see the `training_cluster`
    resource)."""

    address: str
    min_workers: int = 1
    worker_wait_seconds: float = 60.0
    timeout_seconds: float = 3600.0
    partitions_per_worker: int = 2


@contextlib.contextmanager
def cluster_client(settings: ClusterSettings) -> Iterator[Client]:
    """A client of the scheduler at `settings.address`, once `min_workers` have joined."""
    from distributed import Client

    try:
        client = Client(
            settings.address, timeout=settings.worker_wait_seconds, set_as_default=False
        )
    except (OSError, TimeoutError) as error:
        raise ClusterError(
            f"the Dask scheduler at {settings.address} did not answer within "
            f"{settings.worker_wait_seconds:g} s ({_first_line(error)}); start it, or point "
            "CTR_DASK_SCHEDULER_ADDRESS (resource training_cluster) at one that runs, or "
            "unset it to train in process"
        ) from None
    try:
        try:
            client.wait_for_workers(settings.min_workers, timeout=settings.worker_wait_seconds)
        except TimeoutError:
            joined = len(current_workers(client))
            raise ClusterError(
                f"only {joined} of {settings.min_workers} Dask workers joined "
                f"{settings.address} within {settings.worker_wait_seconds:g} s; start more "
                "workers or lower min_workers (resource training_cluster)"
            ) from None
        yield client
    finally:
        client.close()


def current_workers(client: Client) -> set[str]:
    """The workers the scheduler knows now, asked afresh.

    Not `client.scheduler_info()`: the client refreshes that cache in the background without
    the workers, and a read that lands just after such a refresh sees none.
    """
    identity = client.sync(client.scheduler.identity, n_workers=-1)
    return set(identity["workers"])


def within_deadline(
    client: Client,
    settings: ClusterSettings,
    workers: set[str],
    what: str,
    work: Callable[[], T],
) -> T:
    """Runs `work` (which waits on the cluster) and returns its result, unless the deadline
    passes or one of `workers` leaves the cluster first: then a one-line ClusterError."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # handed to the waiting thread
            outcome["error"] = error

    def lost() -> ClusterError | None:
        gone = workers - current_workers(client)
        if not gone:
            return None
        return ClusterError(
            f"{what} failed: Dask worker {', '.join(sorted(gone))} left the cluster while "
            "it held training data (killed, out of memory, or its machine went away); the "
            "champion is unchanged; see that worker's log, then run the check again"
        )

    thread = threading.Thread(target=run, name="ctr-cluster-work", daemon=True)
    started = time.monotonic()
    thread.start()
    while thread.is_alive():
        thread.join(_POLL_SECONDS)
        if not thread.is_alive():
            break
        if (error := lost()) is not None:
            raise error
        if time.monotonic() - started > settings.timeout_seconds:
            raise ClusterError(
                f"{what} did not finish within {settings.timeout_seconds:g} s; the champion "
                "is unchanged; see the Dask dashboard of "
                f"{settings.address} for stuck tasks, or raise timeout_seconds (resource "
                "training_cluster)"
            )
    if "error" in outcome:
        # A peer's death reaches the survivors' collective as a socket error, often before
        # the scheduler has removed the dead worker: name the cause, not the symptom.
        deadline = time.monotonic() + _LOSS_NOTICED_SECONDS
        while time.monotonic() < deadline:
            if (error := lost()) is not None:
                raise error from outcome["error"]
            time.sleep(_POLL_SECONDS)
        raise outcome["error"]
    return outcome["result"]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
