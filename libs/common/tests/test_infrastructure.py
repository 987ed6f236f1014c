"""`infrastructure_ddl` builds, idempotently, the tables `infrastructure_models` maps."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase

from modelyard_common.db import schema_metadata
from modelyard_common.infrastructure import (
    IDEMPOTENCY_KEYS,
    OUTBOX,
    PROCESSED_EVENTS,
    infrastructure_ddl,
    infrastructure_drop_ddl,
    infrastructure_models,
)
from modelyard_testkit.testing import TEST_ADMIN_DB_URL, recreate_database

SCHEMA = "infra_test"
TABLES = (OUTBOX, PROCESSED_EVENTS, IDEMPOTENCY_KEYS)


class _Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


OutboxEvent, ProcessedEvent, IdempotencyRecord = infrastructure_models(_Base)


def test_the_classes_are_named_and_mapped_as_if_declared_on_the_base() -> None:
    models = {
        OutboxEvent: OUTBOX,
        ProcessedEvent: PROCESSED_EVENTS,
        IdempotencyRecord: IDEMPOTENCY_KEYS,
    }
    for model, table in models.items():
        assert model.__module__ == __name__
        assert model.__table__.name == table  # type: ignore[attr-defined]
        assert model.__table__.schema == SCHEMA  # type: ignore[attr-defined]
    assert [m.__name__ for m in models] == ["OutboxEvent", "ProcessedEvent", "IdempotencyRecord"]


async def test_the_ddl_builds_the_mapped_tables_and_drops_them() -> None:
    url = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_test_infrastructure_ddl")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
            for _ in range(2):  # a migration run twice changes nothing
                for statement in infrastructure_ddl(SCHEMA, *TABLES):
                    await conn.execute(text(statement))
            rows = await conn.execute(
                text(
                    "SELECT table_name, column_name, is_nullable FROM information_schema.columns"
                    " WHERE table_schema = :s"
                ),
                {"s": SCHEMA},
            )
            built: dict[str, dict[str, bool]] = {}
            for table, column, nullable in rows:
                built.setdefault(table, {})[column] = nullable == "YES"
            keys = await conn.execute(
                text(
                    "SELECT tc.table_name, kcu.column_name"
                    " FROM information_schema.table_constraints tc"
                    " JOIN information_schema.key_column_usage kcu"
                    " USING (constraint_schema, constraint_name)"
                    " WHERE tc.table_schema = :s AND tc.constraint_type = 'PRIMARY KEY'"
                ),
                {"s": SCHEMA},
            )
            primary: dict[str, set[str]] = {}
            for table, column in keys:
                primary.setdefault(table, set()).add(column)
            for statement in infrastructure_drop_ddl(SCHEMA, *TABLES):
                await conn.execute(text(statement))
            left = await conn.scalars(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": SCHEMA},
            )
            remaining = set(left)
        for model in (OutboxEvent, ProcessedEvent, IdempotencyRecord):
            table = model.__table__  # type: ignore[attr-defined]
            assert built[table.name] == {c.name: bool(c.nullable) for c in table.columns}
            assert primary[table.name] == {c.name for c in table.primary_key.columns}
        assert remaining == set()
    finally:
        await engine.dispose()
