"""Bad arguments on the command line, tried as a new user would.

Every command refuses an argument out of its range with a usage error: exit 2, one
`Error:` line that names the option, no stack trace, and nothing touched (the database the
commands are pointed at does not even exist). An expected failure (the database down, a
DATABASE_URL that is not PostgreSQL's) is one line on stderr that names the thing and the
fix, exit 1, the stack trace only with --verbose; `check-retrain` also prints an error
record on stdout. Most cases run through `CliRunner` (fast); a few through the installed
console script, as a user runs it.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ctr_assets.cli import main
from ctr_assets.db.connection import Database
from ctr_assets.simulation.populate import populate
from ctr_assets_tests.world_specs import small_world

BIN = Path(sys.executable).parent
PASSWORD = "cli-Secret-4711"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


DEAD_PORT = _closed_port()
DEAD_DATABASE = f"postgresql://ctr:{PASSWORD}@127.0.0.1:{DEAD_PORT}/ctr"


@pytest.fixture
def dead_env(tmp_path: Path) -> dict[str, str]:
    """Pointed at a database nothing listens for: a refused argument must never get there,
    and an accepted one fails in the one expected way."""
    return {
        "DATABASE_URL": DEAD_DATABASE,
        "CTR_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": "",
        "DAGSTER_WEBSERVER_URL": f"http://127.0.0.1:{DEAD_PORT}",
    }


def _run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("Error:")]


# (arguments, the option the error line must name)
OUT_OF_RANGE: list[tuple[list[str], str]] = [
    *[
        (["simulate", "--days", value], "--days")
        for value in ("0", "-5", "nan", "3651", "99999999999999999999", "three", "")
    ],
    *[
        (["simulate", "--videos", value], "--videos")
        for value in ("0", "-1", "nan", "10000001", "1.5")
    ],
    (["simulate", "--days", "30", "--videos", "10"], "--videos"),  # fewer videos than days
    *[(["simulate", "--seed", value], "--seed") for value in ("-1", "nan", str(2**32))],
    *[(["simulate", "--drift-day", value], "--drift-day") for value in ("30", "nan", "3650")],
    *[
        (["simulate", "--drift-platform", value], "--drift-platform")
        for value in ("myspace", "TikTok", "tiktok'; DROP TABLE videos; --", "ティックトック")
    ],
    *[
        (["simulate", "--drift-factor", value], "--drift-factor")
        for value in ("0", "-1", "nan", "NaN", "inf", "-inf", "10.5", "1e309", "two")
    ],
    *[
        (["simulate", "--bad-row-fraction", value], "--bad-row-fraction")
        for value in ("-0.1", "1.5", "nan", "inf")
    ],
    *[
        (["simulate", "--end", value], "--end")
        for value in ("2026-13-01", "yesterday", "1970-01-05")
    ],
    (["simulate", "--no-such-option"], "--no-such-option"),
    *[(["demo", "--days", value], "--days") for value in ("0", "-5", "nan", "3", "7", "4000")],
    *[(["demo", "--videos", value], "--videos") for value in ("0", "-6000", "nan")],
    (["demo", "--days", "30", "--videos", "29"], "--videos"),
    (["demo", "--seed", "-42"], "--seed"),
    (["demo", "--drift-day", "30"], "--drift-day"),
    *[
        (["demo", "--drift-factor", value], "--drift-factor")
        for value in ("0", "-1", "nan", "inf", "100")
    ],
    *[
        (["demo", "--first-check-day", value], "--first-check-day")
        for value in ("-1", "nan", "5000")
    ],
    *[
        (["demo", "--schema", value], "--schema")
        for value in ("public", "Bad-Name", "x; DROP SCHEMA public CASCADE", "pg_catalog")
    ],
    *[(["dev", "--port", value], "--port") for value in ("0", "-1", "65536", "nan", "http")],
    (["dev", "--host", "no such host!"], "--host"),
    *[(["check-retrain", "--trigger", value], "--trigger") for value in ("bogus", "", "MANUAL")],
    *[
        (["check-retrain", "--webserver", value], "--webserver")
        for value in ("foo", "ftp://127.0.0.1:3000", "http://", "http://127.0.0.1:99999")
    ],
    *[(["models", "rollback", "v1", "--reason", value], "--reason") for value in ("", "   ")],
    (["models", "rollback"], "VERSION"),
    (["models", "promote", "v1"], "promote"),
    (["nosuch"], "nosuch"),
    (["db", "init", "--force"], "--force"),
]


@pytest.mark.parametrize(
    ("args", "option"), OUT_OF_RANGE, ids=[" ".join(args) or "-" for args, _ in OUT_OF_RANGE]
)
def test_an_argument_out_of_range_is_a_usage_error(
    dead_env: dict[str, str], args: list[str], option: str
) -> None:
    result = _run(dead_env, *args)

    assert result.exit_code == 2, result.output
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert option in errors[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# Every command that reaches the database, with arguments it accepts.
NEEDS_THE_DATABASE: list[list[str]] = [
    ["db", "init"],
    ["simulate", "--days", "2", "--videos", "10"],
    ["demo", "--days", "9"],
    ["check-retrain", "--in-process"],
    ["check-retrain"],  # the webserver does not answer either: it falls back to in-process
    ["models", "list"],
    ["models", "champion"],
    ["models", "rollback", "ctr-20261001T000000Z-aaaaaa"],
    ["dev", "--port", str(DEAD_PORT), "--no-demo-data"],
]


@pytest.mark.parametrize("args", NEEDS_THE_DATABASE, ids=" ".join)
def test_with_the_database_down_every_command_says_so_in_one_line(
    dead_env: dict[str, str], args: list[str]
) -> None:
    result = _run(dead_env, *args)

    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    line = result.stderr.strip()
    assert line.startswith("Error: PostgreSQL is unreachable")
    assert f"127.0.0.1:{DEAD_PORT}" in line.replace('", port ', ":")  # the server it tried
    assert "start the server" in line  # the fix
    assert "DATABASE_URL" in line
    assert PASSWORD not in result.output
    if args[0] == "check-retrain":
        record = json.loads(result.stdout)
        assert record["status"] == "error"
        assert record["reason"] == line.removeprefix("Error: ")
    else:
        assert result.stdout == ""


def test_verbose_adds_the_stack_trace_and_still_ends_in_the_one_line(
    dead_env: dict[str, str],
) -> None:
    result = _run(dead_env, "--verbose", "models", "list")

    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "psycopg2.OperationalError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: PostgreSQL is unreachable")
    assert PASSWORD not in result.stderr


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (f"mysql://ctr:{PASSWORD}@127.0.0.1/ctr", "must be a PostgreSQL URL"),
        ("not a url", "must be a PostgreSQL URL"),
        # libpq quotes a URL it cannot parse whole, password included.
        (f"postgresql://ctr:{PASSWORD}@[::1/ctr", "is not a valid PostgreSQL URL"),
        (f"postgresql://ctr:{PASSWORD}@127.0.0.1:5432/ctr?nonsense=1", "invalid URI query"),
    ],
    ids=["mysql", "not-a-url", "unparsable", "bad-query"],
)
@pytest.mark.parametrize("verbose", [[], ["--verbose"]], ids=["quiet", "verbose"])
def test_a_database_url_that_is_not_postgresql_is_one_line(
    dead_env: dict[str, str], url: str, words: str, verbose: list[str]
) -> None:
    result = _run({**dead_env, "DATABASE_URL": url}, *verbose, "models", "list")

    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: DATABASE_URL")
    assert words in last
    assert "postgresql://user:password@host:5432/database" in last  # the fix
    assert PASSWORD not in result.output
    if not verbose:
        assert result.stderr.count("\n") == 1, result.stderr


def _console_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ctr-assets"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_reported_cases_as_a_user_runs_them(dead_env: dict[str, str]) -> None:
    negative_days = _console_script(dead_env, "simulate", "--days", "-5")
    assert negative_days.returncode == 2
    assert "Traceback" not in negative_days.stderr
    assert _error_lines(negative_days.stderr) == [
        "Error: Invalid value for '--days': -5 is not in the range 1<=x<=3650."
    ]

    negative_factor = _console_script(dead_env, "simulate", "--drift-factor", "-1")
    assert negative_factor.returncode == 2
    assert "'--drift-factor'" in negative_factor.stderr

    database_down = _console_script(dead_env, "check-retrain")
    assert database_down.returncode == 1
    assert json.loads(database_down.stdout)["status"] == "error"
    assert len(database_down.stderr.splitlines()) == 1, database_down.stderr
    assert "PostgreSQL is unreachable" in database_down.stderr


def test_the_demo_counts_the_checks_it_ran(db: Database, tmp_path: Path) -> None:
    """`demo --days 3` printed "checks: -4"; a short demo now says how many really ran."""
    env = {"DATABASE_URL": db.url, "CTR_HOME": str(tmp_path / "home"), "DAGSTER_HOME": ""}
    done = _console_script(
        env,
        "demo",
        *("--days", "4", "--first-check-day", "2", "--videos", "600", "--drift-day", "-1"),
    )

    assert done.returncode == 0, done.stderr[-3000:]
    checks = [line for line in done.stdout.splitlines() if line.startswith("day ")][2:]
    assert len(checks) == 2
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("checks: 2, "), summary
    assert "Traceback" not in done.stderr


def test_simulate_with_accepted_arguments_still_fills_the_database(
    db: Database, tmp_path: Path
) -> None:
    """The ranges refuse nonsense, not the ordinary: the boundaries are accepted."""
    env = {"DATABASE_URL": db.url, "CTR_HOME": str(tmp_path / "home")}
    args = ["--days", "1", "--videos", "1", "--seed", "0", "--drift-day", "0"]
    more = ["--drift-factor", "10", "--bad-row-fraction", "0", "--end", "2026-11-01"]

    result = _run(env, "simulate", *args, *more)

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.split("\n", 1)[1])
    assert summary["days"] == 1
    assert summary["videos_inserted_or_refreshed"] == 1
    populate(db, small_world())  # and the database it wrote is an ordinary one


def test_a_reader_that_goes_away_is_no_error(db: Database, tmp_path: Path) -> None:
    """`ctr-assets backtest | head -1`: the pipe closes early; nothing failed."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(CTR_HOME=str(tmp_path / "home"), DATABASE_URL=db.url)
    done = subprocess.run(
        f"{shlex.quote(str(Path(sys.executable).parent / 'ctr-assets'))} backtest --days 150 "
        "| head -1",
        shell=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.stdout.startswith("day")
    assert "Error" not in done.stderr
    assert "Broken pipe" not in done.stderr
