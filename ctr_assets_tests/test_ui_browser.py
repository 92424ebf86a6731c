"""The Dagster UI of `ctr-assets dev`, in a real browser (Debian's Chromium via Playwright).

Saves screenshots to `CTR_SCREENSHOT_DIR` (default: the test's temporary directory); the
README's picture of the lineage view comes from here.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from ctr_assets.db.connection import Database
from ctr_assets_tests.dev_stack import DevStack, start_dev

CHROMIUM = "/usr/bin/chromium"
ASSETS = (
    "prediction_accuracy",
    "real_training_data",
    "ctr_model",
    "champion_model",
    "retrain_report",
    "accuracy_report",
)
EDGES = {
    ("prediction_accuracy", "ctr_model"),
    ("real_training_data", "ctr_model"),
    ("ctr_model", "champion_model"),
    ("prediction_accuracy", "retrain_report"),
    ("real_training_data", "retrain_report"),
    ("ctr_model", "retrain_report"),
    ("champion_model", "retrain_report"),
    ("retrain_report", "accuracy_report"),
}


@pytest.fixture
def stack(db: Database, dagster_storage_url: str, tmp_path: Path) -> Iterator[DevStack]:
    running = start_dev(
        tmp_path / "home", {"DATABASE_URL": db.url, "DAGSTER_POSTGRES_URL": dagster_storage_url}
    )
    try:
        running.wait_until_answering()
        yield running
    finally:
        if running.process.poll() is None:
            running.interrupt()


@pytest.fixture
def page() -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        # Wide enough that the six nodes of the lineage are drawn with their full names.
        yield browser.new_page(viewport={"width": 1920, "height": 1000})
        browser.close()


def _screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CTR_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _dismiss_welcome(page: Page) -> None:
    """The UI greets a new browser with a newsletter dialog; it hides the page."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=5000)
        skip.click()
    except PlaywrightTimeout:  # no dialog this time
        return


def _drawn_edges(page: Page) -> set[tuple[str, str]]:
    """Lineage edges as drawn: each arrow's ends matched to the nodes they touch."""
    arrows = page.evaluate(
        """() => Array.from(document.querySelectorAll('svg path[marker-end]')).map(p => {
            const m = p.getScreenCTM(), len = p.getTotalLength();
            const at = (l) => { const q = p.getPointAtLength(l);
                return [q.x * m.a + q.y * m.c + m.e, q.x * m.b + q.y * m.d + m.f]; };
            return [at(0), at(len)];
        })"""
    )
    nodes = {}
    for name in ASSETS:
        label = page.locator(f'text="{name}"').last  # the node's title in the graph
        nodes[name] = label.bounding_box()

    def node_at(point: list[float], upstream: bool) -> str | None:
        x, y = point
        candidates = [
            (name, box)
            for name, box in nodes.items()
            if box["y"] - 15 <= y <= box["y"] + 110
            and ((box["x"] < x) if upstream else box["x"] > x)
        ]
        if not candidates:
            return None
        pick = max if upstream else min
        return pick(candidates, key=lambda item: item[1]["x"])[0]

    return {(node_at(start, True), node_at(end, False)) for start, end in arrows}


def test_lineage_automation_and_a_materialization_from_the_page(
    stack: DevStack, page: Page, tmp_path: Path
) -> None:
    shots = _screenshot_dir(tmp_path)

    page.goto(f"{stack.url}/asset-groups/ctr_retraining", wait_until="networkidle")
    _dismiss_welcome(page)
    for name in ASSETS:
        page.locator(f'text="{name}"').last.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # let the layout settle before measuring it
    assert _drawn_edges(page) == EDGES
    page.screenshot(path=str(shots / "asset-graph.png"))

    page.goto(f"{stack.url}/automation", wait_until="networkidle")
    for name in ("ctr_accuracy_sensor", "purchase_signals_sensor", "daily_retrain_check"):
        row = (
            page.locator("div")
            .filter(has_text=name)
            .filter(has=page.locator("input[type=checkbox]"))
            .last
        )
        row.wait_for(timeout=30_000)
        toggles = row.locator("input[type=checkbox]")
        # The last checkbox of a row is its running toggle (the first selects the row).
        assert toggles.last.is_checked(), f"{name} is not running"
    page.screenshot(path=str(shots / "automation.png"))

    page.goto(f"{stack.url}/assets/prediction_accuracy", wait_until="networkidle")
    page.get_by_role("button", name="Materialize").first.click()
    page.get_by_text("Launched run").wait_for(timeout=30_000)
    launched = re.search(r"Launched run\s*([0-9a-f]{8})", page.inner_text("body"))
    assert launched, "no run id in the launch notice"
    run = _wait_for_run(stack, launched.group(1))
    assert run["status"] == "SUCCESS", run
    assert "prediction_accuracy" in run["materialized"], run
    page.goto(f"{stack.url}/runs/{run['runId']}", wait_until="networkidle")
    page.get_by_text("Success").first.wait_for(timeout=30_000)
    page.screenshot(path=str(shots / "materialization-run.png"))


def _wait_for_run(stack: DevStack, prefix: str, timeout_seconds: float = 300) -> dict:
    """The run whose id starts with `prefix`, once it has finished."""
    query = """{ runsOrError(limit: 20) { ... on Runs { results {
        runId status assetMaterializations { assetKey { path } } } } } }"""
    deadline = time.monotonic() + timeout_seconds
    while True:
        runs = stack.graphql(query)["runsOrError"]["results"]
        found = [r for r in runs if r["runId"].startswith(prefix)]
        if found and found[0]["status"] in {"SUCCESS", "FAILURE", "CANCELED"}:
            run = found[0]
            run["materialized"] = {
                "/".join(m["assetKey"]["path"]) for m in run["assetMaterializations"]
            }
            return run
        assert time.monotonic() < deadline, f"run {prefix} did not finish: {found}"
        time.sleep(2)
