"""Launching a check on a running Dagster webserver, so it shows in the UI.

Plain GraphQL over HTTP: the command that launches a check needs neither Dagster nor the
code location in its own process (importing them took seconds of every on-demand check;
see bench/check_latency.py). The run does the work.
"""

import os
import time
from dataclasses import dataclass
from typing import Any

import requests

DEFAULT_WEBSERVER = "http://127.0.0.1:3000"
# The names the code location defines (orchestration/assets.py, jobs.py); repeated here so
# that this module imports neither. ctr_assets_tests/test_check_retrain_cli.py checks that
# they agree.
TRIGGER_TAG = "ctr_assets/trigger"
RETRAIN_CHECK_JOB = "retrain_check_job"
# What an on-demand check materializes: the check itself, as in-process. The accuracy
# report follows the scheduled checks (and `ctr-assets report`).
CHECK_ASSETS = (
    "prediction_accuracy",
    "real_training_data",
    "ctr_model",
    "champion_model",
    "retrain_report",
)
# How often the command asks whether its run has finished: a small GraphQL query, so a
# finished check is noticed within a quarter of a second rather than a whole one.
_POLL_SECONDS = 0.25
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")

_JOB_LOCATION = """
{ repositoriesOrError { __typename
    ... on RepositoryConnection { nodes { name location { name } jobs { name } } }
    ... on PythonError { message } } }
"""
_LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) { __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message } } }
"""
_STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } ... on Error { message } } }
"""


class LaunchError(RuntimeError):
    """The webserver answered but did not launch the check; the message says why."""


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
    status: str  # Dagster's run status: SUCCESS, FAILURE, CANCELED


def _graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = requests.post(
        f"{url.rstrip('/')}/graphql",
        json={"query": query, "variables": variables or {}},
        timeout=60,
    )
    response.raise_for_status()
    answer = response.json()
    if answer.get("errors"):
        raise LaunchError(f"the webserver at {url} refused the query: {answer['errors']}")
    return answer["data"]


def _job_location(url: str) -> tuple[str, str]:
    """The code location and repository that hold the check job."""
    found = _graphql(url, _JOB_LOCATION)["repositoriesOrError"]
    if found["__typename"] != "RepositoryConnection":
        raise LaunchError(f"the webserver at {url} cannot list its code: {found.get('message')}")
    for repository in found["nodes"]:
        if any(job["name"] == RETRAIN_CHECK_JOB for job in repository["jobs"]):
            return repository["location"]["name"], repository["name"]
    raise LaunchError(
        f"no code location on the webserver at {url} has the job {RETRAIN_CHECK_JOB} "
        "(still loading, or another project's webserver?)"
    )


def submit_check(
    url: str,
    trigger: str,
    retrain_settings: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Submits the check job through Dagster's GraphQL API; returns the run id at once.
    `retrain_settings` overrides fields of the `retrain_settings` resource for this run."""
    location, repository = _job_location(url)
    params = {
        "selector": {
            "repositoryLocationName": location,
            "repositoryName": repository,
            "jobName": RETRAIN_CHECK_JOB,
            "assetSelection": [{"path": [name]} for name in CHECK_ASSETS],
        },
        "runConfigData": (
            {"resources": {"retrain_settings": {"config": retrain_settings}}}
            if retrain_settings
            else {}
        ),
        "executionMetadata": {
            "tags": [
                {"key": key, "value": value}
                for key, value in {TRIGGER_TAG: trigger, **(tags or {})}.items()
            ]
        },
    }
    launched = _graphql(url, _LAUNCH, {"executionParams": params})["launchRun"]
    if launched["__typename"] == "LaunchRunSuccess":
        return launched["run"]["runId"]
    why = launched.get("message") or "; ".join(e["message"] for e in launched.get("errors", []))
    raise LaunchError(f"the webserver at {url} did not launch the check: {why}")


def run_status(url: str, run_id: str) -> str:
    found = _graphql(url, _STATUS, {"runId": run_id})["runOrError"]
    if found["__typename"] != "Run":
        raise LaunchError(f"run {run_id} is not on the webserver at {url}: {found.get('message')}")
    return found["status"]


def run_check_on_webserver(
    url: str,
    trigger: str,
    timeout_seconds: float = 3600,
    retrain_settings: dict[str, Any] | None = None,
) -> RemoteRun:
    """Submits the check job (see `submit_check`) and waits for it to finish."""
    run_id = submit_check(url, trigger, retrain_settings)
    deadline = time.monotonic() + timeout_seconds
    while (status := run_status(url, run_id)) not in FINISHED:
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {status} after {timeout_seconds:.0f} s")
        time.sleep(_POLL_SECONDS)
    return RemoteRun(run_id, status)
