"""One way to reach the application database, whichever server it is."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.extensions

from ctr_assets import settings
from ctr_assets.db.embedded import start_embedded_postgres

if TYPE_CHECKING:  # imported where frames are read: the command line starts faster
    import adbc_driver_postgresql.dbapi as adbc

_DRIVER_SUFFIX = re.compile(r"^(postgres(?:ql)?)\+[a-z0-9_]+://")


class DatabaseUrlError(ValueError):
    """The configured database URL is not a PostgreSQL URL."""


def libpq_url(url: str) -> str:
    """The URL as libpq reads it: SQLAlchemy driver suffixes (`+psycopg2`) removed."""
    url = _DRIVER_SUFFIX.sub("postgresql://", url)
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if not url.startswith("postgresql://"):
        raise DatabaseUrlError(
            f"DATABASE_URL must be a PostgreSQL URL (postgresql://...), got {url.split(':')[0]}:"
        )
    try:
        psycopg2.extensions.parse_dsn(url)
    except psycopg2.ProgrammingError as error:
        # libpq quotes the whole URL, password included: show it redacted, and do not chain.
        shown = str(error).strip().replace(url, Database(url).redacted_url())
        raise DatabaseUrlError(f"DATABASE_URL is not a valid PostgreSQL URL: {shown}") from None
    return url


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database, reached through psycopg2 for statements and ADBC for frames."""

    url: str

    @classmethod
    def from_environment(cls, *, keep_embedded_running: bool = False) -> Database:
        """`DATABASE_URL` if set, else the embedded server under the project home."""
        configured = settings.configured_database_url()
        if configured:
            return cls(libpq_url(configured))
        return cls.embedded(settings.ctr_home(), keep_running=keep_embedded_running)

    @classmethod
    def embedded(cls, home: Path, *, keep_running: bool = False) -> Database:
        return cls(start_embedded_postgres(home, keep_running=keep_running))

    @property
    def sqlalchemy_url(self) -> str:
        """The same database for SQLAlchemy users such as dagster-postgres."""
        return "postgresql+psycopg2://" + self.url.removeprefix("postgresql://")

    @contextmanager
    def connect(self) -> Iterator[psycopg2.extensions.connection]:
        """A connection whose transaction commits on success and rolls back on error.

        When the server went away mid-transaction the error raised is the server's (say
        "terminating connection due to administrator command"), not a failed rollback's
        "connection already closed".
        """
        conn = psycopg2.connect(self.url)
        try:
            yield conn
            conn.commit()
        except BaseException:
            if not conn.closed:
                with contextlib.suppress(psycopg2.Error):
                    conn.rollback()
            raise
        finally:
            conn.close()

    @contextmanager
    def connect_arrow(self) -> Iterator[adbc.Connection]:
        """An ADBC connection: query results arrive as Arrow tables (binary COPY underneath)."""
        import adbc_driver_postgresql.dbapi as adbc

        conn = adbc.connect(self.url)
        try:
            yield conn
        finally:
            conn.close()

    def in_schema(self, schema: str) -> Database:
        """The same database with `schema` first on the search path (tables land there)."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
            raise ValueError(f"schema names here are lower-case identifiers, got {schema!r}")
        separator = "&" if "?" in self.url else "?"
        return Database(f"{self.url}{separator}options=-csearch_path%3D{schema}")

    def redacted_url(self) -> str:
        """The URL with any password hidden (in the user part or as a query parameter), for
        logs and messages."""
        hidden = re.sub(r"(://[^:/@]*:)[^@]+@", r"\1***@", self.url)
        return re.sub(r"([?&]password=)[^&]*", r"\1***", hidden)

    def __repr__(self) -> str:
        # Never the password: a Database may end up in a log, an error or a test report.
        return f"Database({self.redacted_url()!r})"


# Rows arrive from the ADBC driver in Arrow batches of about this many bytes (its default is
# 16 MiB). A streamed read holds up to four at once (the training read: one fetched, two
# waiting in the read-ahead, one screened): with 1 MiB batches, loading the 38 MiB frame of
# a check on the 1M-video bench world peaked 56-59 MiB above the start instead of 88-95 in
# the same time, and the 683 MiB frame of every eligible video at 5M 760 MiB instead of 819
# (9.8 s against 9.1 s, one run each).
READ_BATCH_BYTES = 1 << 20


def small_batches(cursor: Any) -> None:
    """Makes the ADBC `cursor`'s next query return batches of about `READ_BATCH_BYTES`."""
    cursor.adbc_statement.set_options(
        **{"adbc.postgresql.batch_size_hint_bytes": str(READ_BATCH_BYTES)}
    )
