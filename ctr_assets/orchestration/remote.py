"""Launching a check on a running Dagster webserver, so it shows in the UI."""

import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import dagster as dg
import requests
from dagster_graphql import DagsterGraphQLClient

from ctr_assets.orchestration.assets import TRIGGER_TAG
from ctr_assets.orchestration.jobs import RETRAIN_CHECK_JOB

DEFAULT_WEBSERVER = "http://127.0.0.1:3000"
# How often the command asks whether its run has finished: a small GraphQL query, so a
# finished check is noticed within a quarter of a second rather than a whole one.
_POLL_SECONDS = 0.25
_FINISHED = {
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
}


def webserver_url() -> str:
    return os.environ.get("DAGSTER_WEBSERVER_URL") or DEFAULT_WEBSERVER


def webserver_answers(url: str) -> bool:
    """True when a Dagster webserver answers at `url` (within a second)."""
    try:
        return requests.get(f"{url.rstrip('/')}/server_info", timeout=1).ok
    except requests.RequestException:
        return False


@dataclass(frozen=True)
class RemoteRun:
    run_id: str
    status: dg.DagsterRunStatus


def _graphql_client(url: str) -> DagsterGraphQLClient:
    parsed = urlparse(url)
    return DagsterGraphQLClient(
        parsed.hostname or "127.0.0.1",
        port_number=parsed.port,
        use_https=parsed.scheme == "https",
        path_prefix=parsed.path.rstrip("/"),
    )


def submit_check(
    url: str,
    trigger: str,
    retrain_settings: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Submits the check job through Dagster's GraphQL API; returns the run id at once.
    `retrain_settings` overrides fields of the `retrain_settings` resource for this run."""
    client = _graphql_client(url)
    run_config = (
        {"resources": {"retrain_settings": {"config": retrain_settings}}}
        if retrain_settings
        else None
    )
    return client.submit_job_execution(
        RETRAIN_CHECK_JOB, run_config=run_config, tags={TRIGGER_TAG: trigger, **(tags or {})}
    )


def run_check_on_webserver(
    url: str,
    trigger: str,
    timeout_seconds: float = 3600,
    retrain_settings: dict[str, Any] | None = None,
) -> RemoteRun:
    """Submits the check job (see `submit_check`) and waits for it to finish."""
    run_id = submit_check(url, trigger, retrain_settings)
    client = _graphql_client(url)
    deadline = time.monotonic() + timeout_seconds
    while (status := client.get_run_status(run_id)) not in _FINISHED:
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {status.value} after {timeout_seconds:.0f} s")
        time.sleep(_POLL_SECONDS)
    return RemoteRun(run_id, status)
