"""Columns that the services' tables share, for the revisions that create those tables.

SQLAlchemy columns for tables declared on `schema_metadata(schema)` and created by
`changes.create_tables`; SQL column lists for `changes.create_table`. A revision that used one
keeps using it as it is: change a column in a new revision, never here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def keyed_in_workspace() -> list[sa.Column[Any]]:
    """Return a uuid primary key `id` and an indexed `workspace` (deployer and gateway tables)."""
    return [
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("workspace", sa.String(length=200), nullable=False, index=True),
    ]


def reference(column: str, table: str, *, ondelete: str, **options: Any) -> sa.Column[Any]:
    """Return a uuid column `column` referencing the id of `table` ("schema.name").

    `options` are the Column's own (nullable, index, primary_key).
    """
    return sa.Column(column, sa.Uuid(), sa.ForeignKey(f"{table}.id", ondelete=ondelete), **options)


# The counters `UsageCountersMixin` maps: gateway traffic of one model on one day.
USAGE_COUNTERS = """
    requests bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    total_tokens bigint NOT NULL DEFAULT 0
"""
