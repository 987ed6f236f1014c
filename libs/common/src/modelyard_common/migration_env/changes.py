"""A revision's schema changes, each declared once for both its upgrade and its downgrade.

A revision reads: its message (the docstring, one line), `revision` and `down_revision`, then
the changes, e.g. `migrations/versions/0010_device_notes.py` below its docstring:

    from modelyard_common.migration_env.changes import add_columns, create_index, migration

    revision: str = "0010"
    down_revision: str | None = "0009"

    upgrade, downgrade = migration(
        add_columns("deployer.devices", note="text NOT NULL DEFAULT ''"),
        create_index("ix_devices_note", "deployer.devices", "workspace, note"),
    )

`upgrade` applies the changes in order; `downgrade` undoes them, the last one first. The SQL says
IF [NOT] EXISTS throughout: a revision run twice, or on a database that already has part of it
(built by an early copy of an earlier revision), changes nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import CreateIndex, CreateTable, DropTable, ExecutableDDLElement

from modelyard_common.infrastructure import (
    InfrastructureTable,
    infrastructure_ddl,
    infrastructure_drop_ddl,
)

# What `op.execute` runs: SQL text, or a DDL element SQLAlchemy renders for PostgreSQL.
Statement = str | ExecutableDDLElement


@dataclass(frozen=True)
class Change:
    """The statements making one schema change, and those undoing it (none: it stays)."""

    apply: tuple[Statement, ...]
    undo: tuple[Statement, ...] = ()


def sql(
    apply: Statement | Iterable[Statement], undo: Statement | Iterable[Statement] = ()
) -> Change:
    """Return the change these statements make; `undo` (one or several) reverses it.

    For statements another module writes (`infrastructure_ddl`, `governance_ddl`, ...) and for
    data fixes, which have nothing to undo.
    """
    return Change(_statements(apply), _statements(undo))


def add_columns(table: str, **columns: str) -> Change:
    """Return adding `columns` (name="type and constraints") to `table`; undone by dropping them."""
    return Change(
        tuple(
            f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {definition}"
            for name, definition in columns.items()
        ),
        tuple(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {name}" for name in reversed(columns)),
    )


def create_table(table: str, definition: str) -> Change:
    """Return creating `table` ("schema.name") from its SQL column and constraint list."""
    return Change(
        (f"CREATE TABLE IF NOT EXISTS {table} ({definition})",),
        (f"DROP TABLE IF EXISTS {table}",),
    )


def create_index(name: str, table: str, columns: str, *, drop_on_downgrade: bool = True) -> Change:
    """Return creating index `name` on `table` ("schema.name") over `columns` (SQL).

    `drop_on_downgrade=False` for an index an earlier revision creates too (and drops itself).
    """
    schema = table.partition(".")[0]
    drop = (f"DROP INDEX IF EXISTS {schema}.{name}",) if drop_on_downgrade else ()
    return Change((f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})",), drop)


def create_infrastructure(schema: str, *tables: InfrastructureTable) -> Change:
    """Return creating the outbox, processed-events or idempotency tables `schema` keeps."""
    return sql(infrastructure_ddl(schema, *tables), infrastructure_drop_ddl(schema, *tables))


def create_tables(tables: sa.MetaData, *infrastructure: InfrastructureTable) -> Change:
    """Return creating the tables declared on `tables`, then the schema's `infrastructure` tables.

    For a service's first revision. Its tables are declared like ORM models, on
    `schema_metadata(schema)`, so that keys, constraints and column indexes get the names its
    models give them (`migration_env.columns` has the columns several share). They are created
    in order, each with its indexes; the infrastructure ones (outbox, processed events,
    idempotency keys) by `infrastructure_ddl`. Undone by dropping them all, the last first.
    """
    declared = list(tables.tables.values())
    apply: list[Statement] = []
    for table in declared:
        apply.append(CreateTable(table))
        apply.extend(
            CreateIndex(index) for index in sorted(table.indexes, key=lambda i: str(i.name))
        )
    undo: list[Statement] = [DropTable(table) for table in reversed(declared)]
    if infrastructure:
        schema = str(tables.schema)
        apply.extend(infrastructure_ddl(schema, *infrastructure))
        undo[:0] = infrastructure_drop_ddl(schema, *infrastructure)
    return Change(tuple(apply), tuple(undo))


def migration(*changes: Change) -> tuple[Callable[[], None], Callable[[], None]]:
    """Return a revision's `upgrade` (apply `changes` in order) and `downgrade` (undo them)."""

    def upgrade() -> None:
        for change in changes:
            for statement in change.apply:
                op.execute(statement)

    def downgrade() -> None:
        for change in reversed(changes):
            for statement in change.undo:
                op.execute(statement)

    return upgrade, downgrade


def _statements(statements: Statement | Iterable[Statement]) -> tuple[Statement, ...]:
    if isinstance(statements, str | ExecutableDDLElement):
        return (statements,)
    return tuple(statements)
