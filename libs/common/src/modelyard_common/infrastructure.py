"""The tables every service keeps besides its domain, written once: ORM classes and DDL.

Three of them: the `outbox` its events leave by, the `processed_events` its consumers record
(the inbox), and the `idempotency_keys` holding the first answer to a create. Their columns are
the mixins next to the code that uses them (`OutboxMixin`, `ProcessedEventMixin`,
`IdempotencyRecordMixin`); here they become one service's classes and one service's tables:

    # db.py
    OutboxEvent, ProcessedEvent, IdempotencyRecord = infrastructure_models(Base)

    # migrations/versions/0001_....py
    def upgrade() -> None:
        execute_ddl(infrastructure_ddl(SCHEMA, OUTBOX, IDEMPOTENCY_KEYS))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal, NamedTuple, cast

from sqlalchemy.orm import DeclarativeBase

from modelyard_common.http import IdempotencyRecordMixin, idempotency_keys_ddl
from modelyard_common.inbox import ProcessedEventMixin, processed_events_ddl
from modelyard_common.outbox import OutboxMixin, outbox_ddl

InfrastructureTable = Literal["outbox", "processed_events", "idempotency_keys"]
OUTBOX: InfrastructureTable = "outbox"
PROCESSED_EVENTS: InfrastructureTable = "processed_events"
IDEMPOTENCY_KEYS: InfrastructureTable = "idempotency_keys"

# Each table's DDL, as its mixin maps it today (IF NOT EXISTS: running it twice changes nothing).
_DDL: dict[InfrastructureTable, Callable[[str], list[str]]] = {
    OUTBOX: outbox_ddl,
    PROCESSED_EVENTS: processed_events_ddl,
    IDEMPOTENCY_KEYS: idempotency_keys_ddl,
}


class InfrastructureModels(NamedTuple):
    """One service's infrastructure classes, in the order `infrastructure_models` unpacks."""

    OutboxEvent: type[OutboxMixin]
    ProcessedEvent: type[ProcessedEventMixin]
    IdempotencyRecord: type[IdempotencyRecordMixin]


def infrastructure_models(base: type[DeclarativeBase]) -> InfrastructureModels:
    """Return the outbox, processed-event and idempotency classes mapped on `base`'s schema.

    The classes are named and placed as if declared in `base`'s module (its `db.py`).
    """

    def declare(name: str, mixin: type, table: str, doc: str) -> type:
        namespace = {"__tablename__": table, "__module__": base.__module__, "__doc__": doc}
        return type(name, (mixin, base), namespace)

    return InfrastructureModels(
        cast(
            type[OutboxMixin],
            declare(
                "OutboxEvent",
                OutboxMixin,
                OUTBOX,
                "Events written with the change they announce; the relay publishes them.",
            ),
        ),
        cast(
            type[ProcessedEventMixin],
            declare(
                "ProcessedEvent",
                ProcessedEventMixin,
                PROCESSED_EVENTS,
                "Events this service has already applied (consumers are idempotent by event id).",
            ),
        ),
        cast(
            type[IdempotencyRecordMixin],
            declare(
                "IdempotencyRecord",
                IdempotencyRecordMixin,
                IDEMPOTENCY_KEYS,
                "The first answer to a create sent with an Idempotency-Key.",
            ),
        ),
    )


def infrastructure_ddl(schema: str, *tables: InfrastructureTable) -> list[str]:
    """Return the statements creating `tables` in `schema` as the mixins map them today.

    A service's migrations create them with this where they first appear. The migrations that
    later changed a table (the outbox's `next_attempt_at`, the idempotency records' `subject`)
    stay in the chain for the databases built before; on a database built by this they change
    nothing, and the tables come out column for column as on an old one.
    """
    return [statement for table in tables for statement in _DDL[table](schema)]


def infrastructure_drop_ddl(schema: str, *tables: InfrastructureTable) -> list[str]:
    """Return the statements dropping `tables` from `schema` (their indexes go with them)."""
    return [f"DROP TABLE IF EXISTS {schema}.{table}" for table in tables]


def execute_ddl(statements: Iterable[str]) -> None:
    """Run `statements` in the migration being applied (inside a migration's upgrade/downgrade)."""
    from alembic import op

    for statement in statements:
        op.execute(statement)
