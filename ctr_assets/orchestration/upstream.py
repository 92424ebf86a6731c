"""What an upstream asset described: the metadata of its newest materialization.

Assets here hand nothing to each other through files: each reports with metadata, the
durable records live in PostgreSQL (the registry, `retrain_decisions`), and a downstream
step that needs an upstream's figures reads that description (the same one the UI shows),
then reads the data itself.
"""

from __future__ import annotations

from typing import Any

import dagster as dg


class MissingUpstream(dg.Failure):
    """The upstream asset has never been materialized."""


def upstream_description(instance: dg.DagsterInstance, key: str) -> dict[str, Any]:
    """The metadata values of `key`'s newest materialization (this run's, when it made one)."""
    records = instance.fetch_materializations(dg.AssetKey(key), limit=1).records
    if not records or records[0].asset_materialization is None:
        raise MissingUpstream(
            description=f"{key} has never been materialized; materialize it (or the whole "
            "group) first"
        )
    return {name: entry.value for name, entry in records[0].asset_materialization.metadata.items()}
