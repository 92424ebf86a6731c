"""The accuracy report of a demo world lived through 30 days (drift included): the command,
the asset, and the page in a real browser with the network blocked.

The browser is Debian's Chromium driven by Playwright, as in `test_ui_browser.py`; it saves
the screenshot the README shows to `CTR_SCREENSHOT_DIR` (default: the test's temporary
directory).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from click.testing import CliRunner, Result
from playwright.sync_api import Page, sync_playwright

from ctr_assets.cli import main
from ctr_assets.db.connection import Database
from ctr_assets.db.demo_schema import reset_demo_schema
from ctr_assets.ml.decision import RetrainPolicy
from ctr_assets.orchestration.demo import DemoDay, run_demo
from ctr_assets.orchestration.run_check import run_check_in_process
from ctr_assets.simulation.world import WorldSpec
from ctr_assets_tests.report_page import assert_page_shows_json
from ctr_assets_tests.world_specs import END

CHROMIUM = "/usr/bin/chromium"
SCHEMA = "report_demo"
SPEC = WorldSpec(seed=42, days=30, videos=1800, drift_day=15, end=END)
CHARTS = {"daily-mae", "promotions", "weeks", "checks", "deciles"}
SECTIONS = ("summary", "accuracy", "learning", "reliability", "ranking")


@dataclass
class LivedDemo:
    database: Database  # the whole database (the demo lives in its schema)
    world: Database  # scoped to the demo's schema
    instance: dg.DagsterInstance
    days: list[DemoDay]
    home: Path


@pytest.fixture(scope="module")
def demo(
    pg_admin_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LivedDemo]:
    """One 30-day demo world for the module (living it is the slow part)."""
    name = f"ctr_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(pg_admin_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    head, _, query = pg_admin_url.partition("?")
    database = Database(f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else ""))
    home = tmp_path_factory.mktemp("report-demo")
    world = reset_demo_schema(database, SCHEMA)
    try:
        with dg.instance_for_test() as instance:
            days = run_demo(world, SPEC, home / "models", instance=instance, first_check_day=7)
            yield LivedDemo(database, world, instance, days, home)
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _report(database: Database, home: Path, *args: str) -> Result:
    env = {"DATABASE_URL": database.url, "CTR_HOME": str(home), "DAGSTER_HOME": ""}
    return CliRunner().invoke(main, ["report", *args], env=env)


@pytest.fixture(scope="module")
def written(demo: LivedDemo) -> tuple[Path, dict]:
    """`ctr-assets report --schema report_demo` after the demo: the page and its JSON."""
    out = demo.home / "out" / "report.html"
    out.parent.mkdir()
    done = _report(
        demo.database, demo.home, "--schema", SCHEMA, "--end", f"{END:%Y-%m-%d}", "--out", str(out)
    )
    assert done.exit_code == 0, done.output
    assert done.output.splitlines()[0] == (
        "accuracy report of 2026-10-02 to 2026-10-31 (30 days) in schema report_demo"
    )
    assert f"wrote {out}" in done.output
    return out, json.loads(out.with_suffix(".json").read_text())


def test_the_report_covers_the_30_days_of_the_demo(demo: LivedDemo, written: tuple) -> None:
    page, document = written
    assert document["period"] == {"first_day": "2026-10-02", "last_day": "2026-10-31", "days": 30}
    checks = [d for d in demo.days if d.status != "history"]
    assert document["reliability"]["checks"]["value"] == len(checks) == 23
    assert len(document["accuracy"]["days_without_check"]) == 7  # the legacy history
    daily = document["accuracy"]["daily"]
    assert [d["mae"] for d in daily if d["mae"] is not None] == [
        d.mae for d in checks if d.mae is not None
    ]
    retrains = [d.day for d in checks if d.status == "retrained"]
    promotions = document["learning"]["promotions"]
    assert len(promotions) == len(retrains) >= 2  # the first model, and one after the drift
    after_drift = promotions[-1]
    assert after_drift["previous"] == promotions[0]["version"]
    # The promoted model keeps the live MAE under the users' threshold in the week after its
    # promotion. (Not necessarily under the old champion's in the week before: that week
    # can lie mostly before the drift, when the old champion was right.)
    before, after = after_drift["before"]["mae"]["value"], after_drift["after"]["mae"]["value"]
    assert before is not None
    assert after < RetrainPolicy().mae_threshold
    assert document["ranking"]["top_decile_ctr_lift"]["value"] > 1.5
    assert document["accuracy"]["headline"]["roas_accuracy"]["value"] is not None
    compared = assert_page_shows_json(page.read_text(), document)
    assert compared > 400


def test_json_flag_prints_the_same_figures(demo: LivedDemo, written: tuple) -> None:
    _, document = written
    done = _report(
        demo.database, demo.home, "--schema", SCHEMA, "--end", f"{END:%Y-%m-%d}", "--json"
    )
    assert done.exit_code == 0, done.output
    printed = json.loads(done.output)
    assert {**printed, "generated_at": None} == {**document, "generated_at": None}
    default = demo.home / "reports" / "accuracy-report-report_demo-2026-10-31.html"
    assert default.exists()  # without --out: under CTR_HOME/reports


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--days", "0"], "--days"),
        (["--days", "nan"], "--days"),
        (["--out", "/no/such/folder/report.html"], "--out"),
        (["--out", "report.json"], "--out"),
        (["--schema", "Robert'); DROP TABLE videos;--"], "--schema"),
        (["--end", "1970-01-10"], "--end"),
    ],
)
def test_bad_arguments_are_usage_errors_before_the_database(
    tmp_path: Path, args: list[str], option: str
) -> None:
    dead = Database("postgresql://nobody@127.0.0.1:9/none")  # nothing listens there
    done = _report(dead, tmp_path, *args)
    assert done.exit_code == 2, done.output
    errors = [line for line in done.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert option in errors[0]


def test_a_schema_that_does_not_exist_is_a_usage_error(demo: LivedDemo, tmp_path: Path) -> None:
    done = _report(demo.database, tmp_path, "--schema", "no_such_world")
    assert done.exit_code == 2
    assert "schema 'no_such_world' does not exist" in done.output


def test_the_asset_writes_the_report_and_shows_its_headline(
    demo: LivedDemo, written: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On demand, after the demo's checks: the report of the days up to the latest
    check's, its figures as numbers in the metadata and its file linked."""
    monkeypatch.setenv("CTR_HOME", str(tmp_path))
    run = run_check_in_process(demo.instance, demo.world, selection=["accuracy_report"])
    assert run.success

    event = demo.instance.get_latest_materialization_event(dg.AssetKey("accuracy_report"))
    assert event is not None
    assert event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    html = Path(metadata["report"].value)
    assert html == tmp_path / "reports" / "accuracy-report-2026-10-31.html"
    document = json.loads(Path(metadata["report_json"].value).read_text())
    assert_page_shows_json(html.read_text(), document)
    _, by_command = written
    headline = document["accuracy"]["headline"]
    assert headline == by_command["accuracy"]["headline"]
    assert metadata["ctr_mae"].value == pytest.approx(headline["ctr_mae"]["value"])
    assert metadata["ctr_mae_upper_bound"].value == pytest.approx(headline["ctr_mae"]["upper"])
    assert metadata["checks"].value == 23
    assert metadata["r2"].value == pytest.approx(headline["r2"]["value"])
    # The targets as a table (a TableSchema, not Markdown): one row per judged figure.
    targets = metadata["targets"]
    assert isinstance(targets, dg.TableMetadataValue)
    assert [c.name for c in targets.schema.columns] == [
        "figure",
        "value",
        "target",
        "verdict",
        "why_missing",
    ]
    rows = {row.data["figure"]: row.data for row in targets.records}
    assert rows["ctr_mae"]["value"] == pytest.approx(headline["ctr_mae"]["value"])
    assert rows["ctr_mae"]["verdict"] == headline["ctr_mae"]["verdict"]
    assert rows["ctr_mae"]["target"] == headline["ctr_mae"]["target"]
    assert {name for name, figure in headline.items() if figure.get("target")} == set(rows)


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
        yield browser.new_page(viewport={"width": 1100, "height": 900})
        browser.close()


def test_the_page_renders_offline_in_a_browser(page: Page, written: tuple, tmp_path: Path) -> None:
    """Every section and chart renders from the file alone: every request but the file's
    own is aborted and recorded, and there is none."""
    html, _ = written
    address = html.resolve().as_uri()
    left: list[str] = []

    def block(route) -> None:
        if route.request.url == address:
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    page.route("**/*", block)
    page.on("request", lambda r: r.url == address or left.append(r.url))
    page.goto(address, wait_until="load")

    assert page.title().startswith("CTR model accuracy")
    for section in SECTIONS:
        assert page.locator(f"section#{section}").is_visible(), section
    drawn = {}
    for chart in page.locator("figure.chart").all():
        box = chart.locator("svg").bounding_box()
        drawn[chart.get_attribute("data-chart")] = box
        assert box is not None
        assert box["width"] > 300
        assert box["height"] > 100
        assert chart.locator("svg path").count() > 10
    assert set(drawn) == CHARTS
    assert page.locator(".chart-missing").count() == 0
    assert page.locator(".verdict").count() > 10
    assert left == [], f"requests left the page: {left}"

    shots = Path(os.environ.get("CTR_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    top = page.locator("section#accuracy figure.chart").bounding_box()
    page.screenshot(
        path=str(shots / "accuracy-report.png"),
        clip={"x": 0, "y": 0, "width": 1100, "height": top["y"] + top["height"] + 24},
        full_page=True,
    )
