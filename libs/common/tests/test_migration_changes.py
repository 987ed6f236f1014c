"""`migration_env.changes`: a revision declares each change once; its downgrade undoes them."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from modelyard_common.db import schema_metadata
from modelyard_common.infrastructure import OUTBOX
from modelyard_common.migration_env.changes import (
    add_columns,
    create_index,
    create_table,
    create_tables,
    migration,
    sql,
)
from modelyard_common.migration_env.columns import keyed_in_workspace, reference
from modelyard_testkit.testing import TEST_ADMIN_DB_URL, recreate_database

SCHEMA = "changes_test"


def first_revision() -> tuple[Callable[[], None], Callable[[], None]]:
    tables = schema_metadata(SCHEMA)
    sa.Table("shelves", tables, *keyed_in_workspace())
    sa.Table(
        "books",
        tables,
        *keyed_in_workspace(),
        reference("shelf_id", f"{SCHEMA}.shelves", ondelete="CASCADE", nullable=False, index=True),
    )
    return migration(create_tables(tables, OUTBOX))


def second_revision() -> tuple[Callable[[], None], Callable[[], None]]:
    return migration(
        add_columns(f"{SCHEMA}.books", title="text NOT NULL DEFAULT ''", pages="integer"),
        create_index("ix_books_title", f"{SCHEMA}.books", "workspace, title"),
        # As if the first revision created it too (and dropped it): this one leaves it.
        create_index(
            "ix_books_shelf", f"{SCHEMA}.books", "workspace, shelf_id", drop_on_downgrade=False
        ),
        sql(f"UPDATE {SCHEMA}.books SET title = 'untitled' WHERE title = ''"),
        create_table(f"{SCHEMA}.loans", "book_id uuid PRIMARY KEY, due date NOT NULL"),
    )


async def _run(conn: AsyncConnection, step: Callable[[], None]) -> None:
    def run(sync: Connection) -> None:
        with Operations.context(MigrationContext.configure(sync)):
            step()

    await conn.run_sync(run)


async def _schema(conn: AsyncConnection) -> dict[str, set[str]]:
    """Return each table's columns, and under "indexes" and "constraints" their names."""
    rows = await conn.execute(
        text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = :s"
        ),
        {"s": SCHEMA},
    )
    found: dict[str, set[str]] = {"indexes": set(), "constraints": set()}
    for table, column in rows:
        found.setdefault(table, set()).add(column)
    indexes = await conn.scalars(
        text("SELECT indexname FROM pg_indexes WHERE schemaname = :s"), {"s": SCHEMA}
    )
    found["indexes"] = set(indexes)
    constraints = await conn.scalars(
        text(
            "SELECT conname FROM pg_constraint JOIN pg_namespace n ON n.oid = connamespace"
            " WHERE n.nspname = :s"
        ),
        {"s": SCHEMA},
    )
    found["constraints"] = set(constraints)
    return found


async def test_upgrade_applies_the_changes_and_downgrade_undoes_them() -> None:
    url = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_test_migration_changes")
    engine = create_async_engine(url)
    first_up, first_down = first_revision()
    second_up, second_down = second_revision()
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
            await _run(conn, first_up)
            first = await _schema(conn)
            assert first["books"] == {"id", "workspace", "shelf_id"}
            assert "outbox" in first
            assert {"pk_books", "fk_books_shelf_id_shelves"} <= first["constraints"]
            assert {
                f"ix_{SCHEMA}_books_shelf_id",
                f"ix_{SCHEMA}_books_workspace",
                f"ix_{SCHEMA}_shelves_workspace",
            } <= first["indexes"]
            await conn.execute(
                text(f"INSERT INTO {SCHEMA}.shelves VALUES (gen_random_uuid(), 'w')")
            )
            await conn.execute(
                text(
                    f"INSERT INTO {SCHEMA}.books (id, workspace, shelf_id)"
                    f" SELECT gen_random_uuid(), 'w', id FROM {SCHEMA}.shelves"
                )
            )

            for _ in range(2):  # a revision run twice changes nothing more
                await _run(conn, second_up)
            second = await _schema(conn)
            assert second["books"] == {"id", "workspace", "shelf_id", "title", "pages"}
            assert second["loans"] == {"book_id", "due"}
            assert {"ix_books_title", "ix_books_shelf"} <= second["indexes"]
            titles = await conn.scalars(text(f"SELECT title FROM {SCHEMA}.books"))
            assert list(titles) == ["untitled"]

            await _run(conn, second_down)
            undone = await _schema(conn)
            assert undone["books"] == first["books"]
            assert "loans" not in undone
            assert undone["indexes"] == first["indexes"] | {"ix_books_shelf"}

            await _run(conn, first_down)
            assert await _schema(conn) == {"indexes": set(), "constraints": set()}
    finally:
        await engine.dispose()
