"""The schema `ctr-assets demo` lives in, and the guard that keeps it away from real data.

The demo empties its schema before each run (`DROP SCHEMA ... CASCADE`), so the one thing
it must never do is empty a schema it did not create. Three rules make that hold:

1. The name is checked before any SQL sees it: a lower-case identifier, not `public`,
   not PostgreSQL's own (`pg_*`, `information_schema`). A name carrying SQL never reaches
   the server, and every statement quotes the identifier anyway (`sql.Identifier`).
2. A schema the demo creates is marked with a comment (`COMMENT ON SCHEMA`). An existing
   schema without that exact comment is refused, whatever it holds: the demo cannot know
   what it would destroy.
3. The check, the drop and the re-creation happen in one transaction, under an advisory
   lock keyed by the name, so two demos on the same schema take turns.
"""

from __future__ import annotations

import re

from psycopg2 import sql

from ctr_assets.db.connection import Database
from ctr_assets.db.schema import migrate

DEMO_MARK = "ctr_assets demo world: created by `ctr-assets demo`, emptied by every demo run"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_RESERVED = {"public", "information_schema"}


class SchemaRefusedError(ValueError):
    """The demo will not use (and so will not empty) this schema."""


def check_demo_schema_name(schema: str) -> str:
    """The name, if the demo may create a schema of that name; else `SchemaRefusedError`."""
    if not _IDENTIFIER.fullmatch(schema):
        raise SchemaRefusedError(
            f"{schema!r} is not a schema name the demo accepts: use a lower-case identifier "
            "of letters, digits and underscores, such as ctr_demo"
        )
    if schema in _RESERVED or schema.startswith("pg_"):
        raise SchemaRefusedError(
            f"schema {schema} belongs to the database, not to the demo (it holds real or "
            "system tables): choose another --schema, such as ctr_demo"
        )
    return schema


def reset_demo_schema(db: Database, schema: str) -> Database:
    """An empty, migrated schema `schema` for the demo, and `db` scoped to it.

    Creates the schema (marked as the demo's) when it is missing, empties it when it
    carries the demo's mark, and refuses it otherwise, touching nothing.
    """
    check_demo_schema_name(schema)
    name = sql.Identifier(schema)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ctr_assets demo {schema}",))
        cur.execute(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s",
            (schema,),
        )
        existing = cur.fetchone()
        if existing is not None and existing[0] != DEMO_MARK:
            raise SchemaRefusedError(
                f"schema {schema} already exists and was not created by `ctr-assets demo`, "
                "so the demo will not empty it: choose another --schema (if it is a demo "
                f"left by an older version, drop it yourself: DROP SCHEMA {schema} CASCADE)"
            )
        if existing is not None:
            cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(name))
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(name))
        cur.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(name, sql.Literal(DEMO_MARK)))
    scoped = db.in_schema(schema)
    migrate(scoped)
    return scoped
