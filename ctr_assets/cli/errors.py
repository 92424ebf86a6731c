"""How the command line reports a failure a user can meet and fix.

The database down, a damaged model file, a DATABASE_URL that is not PostgreSQL's, a file
that cannot be written, a webserver that does not answer: one line on stderr that names
the thing and the fix, exit 1, and the stack trace only with `--verbose`. No line carries a
secret from the environment.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from urllib.parse import parse_qs, unquote, urlsplit

import click
import psycopg2
import requests

from ctr_assets import settings
from ctr_assets.db.connection import Database, DatabaseUrlError, libpq_url
from ctr_assets.ml.model_files import DamagedChampionError, ModelFileError

EXPECTED_FAILURES = (
    psycopg2.OperationalError,
    ModelFileError,
    DatabaseUrlError,
    requests.RequestException,
    OSError,
)


def _secrets() -> list[str]:
    """The secret values in the environment, in every spelling a message may carry."""
    found: list[str] = []
    url = settings.configured_database_url()
    if url:
        try:
            parts = urlsplit(url)
            found += [parts.password or "", *parse_qs(parts.query).get("password", [])]
        except ValueError:  # not even a URL: then the whole of it is what to hide
            found.append(url)
    found += [os.environ.get(name, "") for name in ("SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN")]
    found += [unquote(value) for value in found]
    return sorted({value for value in found if len(value) >= 4}, key=len, reverse=True)


def scrub(text: str) -> str:
    """The text with every secret of the environment replaced by ***."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text


def _database_in_use() -> str:
    url = settings.configured_database_url()
    if not url:
        return f"the embedded server under {settings.ctr_home()} (DATABASE_URL is unset)"
    try:
        return Database(libpq_url(url)).redacted_url()
    except DatabaseUrlError:
        return "DATABASE_URL"


def expected_failure(error: BaseException) -> str:
    """One line for the user: what failed, and what to do about it."""
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    detail = first or type(error).__name__
    if isinstance(error, psycopg2.OperationalError):
        line = (
            f"PostgreSQL is unreachable or dropped the connection ({detail}); start the "
            f"server or point DATABASE_URL at one that runs (now {_database_in_use()}), "
            "then run the command again"
        )
    elif isinstance(error, DamagedChampionError):
        line = detail  # names the file, the checksums and the way out already
    elif isinstance(error, ModelFileError):
        line = (
            f"{detail}; `ctr-assets models list` shows the versions and `ctr-assets models "
            "rollback VERSION` makes an intact one champion"
        )
    elif isinstance(error, DatabaseUrlError):
        line = f"{detail}; set DATABASE_URL to postgresql://user:password@host:5432/database"
    elif isinstance(error, requests.RequestException):
        line = (
            f"the Dagster webserver did not answer ({detail}); start it (`ctr-assets dev`) "
            "or run the check here with --in-process"
        )
    else:
        line = (
            f"{detail}; check that CTR_HOME ({settings.ctr_home()}) is a writable directory "
            "on a disk with free space"
        )
    return scrub(line)


class CommandLine(click.Group):
    """The `ctr-assets` group: an expected failure in any command ends as one line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (`ctr-assets report | head`): nothing failed here. Point
            # stdout at /dev/null so Python's exit flush does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except EXPECTED_FAILURES as error:
            if ctx.params.get("verbose"):
                click.echo(scrub(traceback.format_exc()).rstrip(), err=True)
            click.echo(f"Error: {expected_failure(error)}", err=True)
            ctx.exit(1)


class WithoutTracebacks(logging.Filter):
    """Without --verbose, a log record that carries an exception is the logs' business;
    the command reports the failure itself, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None
