"""Test fixtures: a real PostgreSQL, one fresh database per test.

The server is found (`CTR_TEST_PG_ADMIN_URL`, default the local server on 127.0.0.1:5432)
or, outside CI, started: an embedded server in a temporary directory. With `CI=true` a
missing server fails the run instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg2
import pytest

from ctr_assets.db.connection import Database
from ctr_assets.db.embedded import start_embedded_postgres
from ctr_assets.db.schema import migrate
from ctr_assets.ml.training import TrainedModel, TrainingParams, train_ctr_model
from ctr_assets_tests.ml.synthetic import synthetic_training_frame

DEFAULT_ADMIN_URL = "postgresql://root@127.0.0.1:5432/postgres"


def _reachable(url: str) -> bool:
    try:
        psycopg2.connect(url, connect_timeout=3).close()
    except psycopg2.OperationalError:
        return False
    return True


def _with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database (handles ?host= socket URLs)."""
    head, _, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("CTR_TEST_PG_ADMIN_URL", DEFAULT_ADMIN_URL)
    if _reachable(url):
        return url
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is not reachable at {url}; CI must provide it", pytrace=False)
    home = Path(tmp_path_factory.mktemp("embedded-pg-for-tests"))
    return start_embedded_postgres(home)


def _admin(url: str):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def template_database(pg_admin_url: str) -> Iterator[str]:
    """A migrated database that each test's database is copied from."""
    name = f"ctr_tmpl_{uuid.uuid4().hex[:10]}"
    admin = _admin(pg_admin_url)
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    migrate(Database(_with_database(pg_admin_url, name)))
    yield name
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def empty_db(pg_admin_url: str) -> Iterator[Database]:
    """A new database with no tables at all."""
    name = f"ctr_test_{uuid.uuid4().hex[:10]}"
    admin = _admin(pg_admin_url)
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    yield Database(_with_database(pg_admin_url, name))
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def db(pg_admin_url: str, template_database: str) -> Iterator[Database]:
    """A new database with the schema in place."""
    name = f"ctr_test_{uuid.uuid4().hex[:10]}"
    admin = _admin(pg_admin_url)
    admin.cursor().execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield Database(_with_database(pg_admin_url, name))
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def dagster_storage_url(pg_admin_url: str) -> Iterator[str]:
    """A new, empty database for Dagster's own storage, as a dagster-postgres URL."""
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    admin = _admin(pg_admin_url)
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    yield Database(_with_database(pg_admin_url, name)).sqlalchemy_url
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """A small synthetic training frame (no database needed)."""
    return synthetic_training_frame(rows=2000, seed=0)


@pytest.fixture(scope="module")
def boosters(frame: pd.DataFrame) -> tuple[TrainedModel, TrainedModel]:
    """Two models that predict differently."""
    return (
        train_ctr_model(frame, TrainingParams(num_boost_round=20)),
        train_ctr_model(frame, TrainingParams(num_boost_round=20, max_depth=2, seed=1)),
    )
