"""Dagster's own storage on PostgreSQL, found the way the product finds its database.

`dagster.yaml` names this class, so that every way of starting Dagster on this project
reaches the same storage without further setup: `DAGSTER_POSTGRES_URL` when it is set
(docker-compose sets it for every service, `ctr-assets dev` for the processes it starts);
otherwise a `dagster` database beside the application's (`DATABASE_URL`, or the embedded
server under `CTR_HOME`), which is what `dagster dev` in the repository root gets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dagster import Field, StringSource
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage

URL_VARIABLE = "DAGSTER_POSTGRES_URL"


class CtrDagsterStorage(DagsterPostgresStorage):
    """dagster-postgres storage whose URL defaults as described above."""

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "postgres_url": Field(
                StringSource,
                is_required=False,
                description=f"Unset: {URL_VARIABLE}, else a `dagster` database beside the "
                "application's.",
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> CtrDagsterStorage:
        return cls(postgres_url=storage_url(config_value.get("postgres_url")), inst_data=inst_data)


def storage_url(configured: str | None = None) -> str:
    """The configured URL, else `DAGSTER_POSTGRES_URL`, else beside the application's."""
    url = configured or os.environ.get(URL_VARIABLE)
    if url:
        return url
    from ctr_assets.db.connection import Database
    from ctr_assets.deploy.local_stack import dagster_storage_url

    return dagster_storage_url(Database.from_environment())
