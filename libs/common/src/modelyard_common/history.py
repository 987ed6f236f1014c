"""The audit trail a service keeps of its resources: one row shape, one diff, one page reader.

Each service declares its own table from `HistoryColumns` (its schema, its `workspace` column and
index), records entries in the caller's transaction with `record`, and serves pages with
`history_rows` and `history_page` (as `HistoryEntryRead`):

    class HistoryEntry(HistoryColumns, Base):
        __tablename__ = "history"
        __table_args__ = (Index("ix_history_resource", "workspace", "resource_id", "at"),)
        workspace: Mapped[str] = mapped_column(String(200))
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends
from pydantic import BaseModel, Field
from sqlalchemy import Column, DateTime, String, bindparam, func, insert, literal, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from modelyard_common.auth import Principal
from modelyard_common.db import new_id, utcnow
from modelyard_common.events import CloudEvent
from modelyard_common.outbox import OutboxMixin, notify_channel, outbox_schema, outbox_values
from modelyard_common.pagination import Page, PageParams, page_params, paginate
from modelyard_common.schema_examples import examples_config

# A change as the trail records it: `{field: {"old": ..., "new": ...}}`.
Changes = dict[str, dict[str, Any]]

SORTS = ("at",)
HistoryPaging = Annotated[PageParams, Depends(page_params("at", list(SORTS)))]


class HistoryColumns:
    """The columns of one change to one resource: who, when, what, each field old -> new."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[uuid.UUID] = mapped_column()
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> Changes:
    """Return `{field: {old, new}}` for every field whose value differs."""
    keys = list(dict.fromkeys([*before, *after]))
    return {
        key: {"old": before.get(key), "new": after.get(key)}
        for key in keys
        if before.get(key) != after.get(key)
    }


def entry_values(
    *,
    principal: Principal,
    resource_type: str,
    resource_id: uuid.UUID,
    action: str,
    changes: Changes,
) -> dict[str, Any]:
    """Return the columns of one history entry (what `record` and `RecordedInsert` write)."""
    return {
        "id": uuid.uuid4(),
        "workspace": principal.workspace,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "action": action,
        "actor": principal.sub,
        "at": utcnow(),
        "changes": changes,
    }


def record(
    session: AsyncSession,
    table: type[Any],
    *,
    principal: Principal,
    resource_type: str,
    resource_id: uuid.UUID,
    action: str,
    changes: Changes,
) -> None:
    """Add an entry of `table` (a service's history table) to the caller's transaction."""
    session.add(
        table(
            **entry_values(
                principal=principal,
                resource_type=resource_type,
                resource_id=resource_id,
                action=action,
                changes=changes,
            )
        )
    )


def is_unique_violation(exc: IntegrityError) -> bool:
    """Return whether a failed write broke a unique constraint (SQLSTATE 23505)."""
    return getattr(exc.orig, "sqlstate", None) == "23505" or "unique" in str(exc.orig).lower()


class RecordedInsert:
    """One statement that inserts a row, its history entry and its outbox event, and wakes relays.

    Through the ORM a create costs five statements (the row, a refresh, the entry, the event,
    a NOTIFY), each a round trip. Here data-modifying CTEs write all three rows in one
    statement, atomic as one, and `pg_notify` in it is delivered at commit like any NOTIFY.
    Built once per table: SQLAlchemy compiles it once and asyncpg prepares it once per
    connection. Every value is computed before (`complete` fills the row's Python defaults),
    so the API view, the history and the event are known without reading the row back.
    """

    def __init__(self, table: type[Any], history: type[Any], outbox: type[OutboxMixin]) -> None:
        self.table = table
        self.columns: list[Column[Any]] = [c for c in table.__table__.columns if c.computed is None]
        for c in self.columns:
            if c.server_default is not None and c.default is None:
                raise ValueError(f"{c} has a server default only: its value is not known before")
        history_columns = list(history.__table__.columns)
        outbox_columns = [
            outbox.__table__.c[name]  # type: ignore[attr-defined]
            for name in ("event_id", "exchange", "routing_key", "payload")
        ]
        row = insert(table.__table__).values(_binds("row", self.columns)).cte("inserted_row")
        entry = (
            insert(history.__table__).values(_binds("entry", history_columns)).cte("inserted_entry")
        )
        event = (
            insert(outbox.__table__)  # type: ignore[attr-defined]
            .values(_binds("event", outbox_columns))
            .cte("inserted_event")
        )
        channel = literal(notify_channel(outbox_schema(outbox)), String)
        self.statement = select(func.pg_notify(channel, "")).add_cte(row, entry, event)

    def complete(self, row: Any) -> dict[str, Any]:
        """Return the column values of a new ORM `row`, its Python defaults filled in on it."""
        values: dict[str, Any] = {}
        for c in self.columns:
            value = getattr(row, c.key)
            if value is None and c.default is not None:
                default: Any = c.default
                value = default.arg(None) if default.is_callable else default.arg
                setattr(row, c.key, value)
            values[c.key] = value
        return values

    async def execute(
        self,
        session: AsyncSession,
        *,
        row: dict[str, Any],
        entry: dict[str, Any],
        event: CloudEvent,
    ) -> None:
        """Write the row, its entry and its event in the session's transaction (one statement).

        A broken unique constraint raises `IntegrityError` (`is_unique_violation`), having
        written nothing.
        """
        params = {f"row_{k}": v for k, v in row.items()}
        params.update({f"entry_{k}": v for k, v in entry.items()})
        params.update({f"event_{k}": v for k, v in outbox_values(event).items()})
        await session.execute(self.statement, params)


def _binds(prefix: str, columns: list[Column[Any]]) -> dict[str, Any]:
    return {c.key: bindparam(f"{prefix}_{c.key}", type_=c.type) for c in columns}


async def history_rows(
    session: AsyncSession,
    table: type[Any],
    *,
    workspace: str,
    resource_id: uuid.UUID,
    params: PageParams,
) -> tuple[list[Any], str | None]:
    """Return one page of a resource's entries (oldest first by default) and the next cursor."""
    stmt = select(table).where(table.workspace == workspace, table.resource_id == resource_id)
    return await paginate(
        session, stmt, params=params, columns={"at": table.at}, id_column=table.id
    )


class FieldChange(BaseModel):
    """One field's value before and after a change (null: absent)."""

    old: Any = None
    new: Any = None


class HistoryEntryRead(BaseModel):
    """One change: who made it, when, and each field's old and new value."""

    model_config = examples_config(
        {
            "id": "3f2b8c1e-5d4a-4e8b-9c7d-2a1b0c9d8e7f",
            "resource_type": "group",
            "resource_id": "9b2e4c6a-1d3f-4a5b-8c7d-0e1f2a3b4c5d",
            "action": "updated",
            "actor": "alice",
            "at": "2026-12-06T15:00:00Z",
            "changes": {"description": {"old": "Chat", "new": "Chat for the help desk"}},
        },
        from_attributes=True,
    )

    id: uuid.UUID
    resource_type: str
    resource_id: uuid.UUID
    action: str = Field(description="created, updated, archived, unarchived, deleted, linked, ...")
    actor: str = Field(description="The `sub` of who made the change.")
    at: datetime
    changes: dict[str, FieldChange]


def history_page(rows: list[Any], cursor: str | None) -> Page[HistoryEntryRead]:
    """Return a page of history rows as the API shows them."""
    return Page(items=[HistoryEntryRead.model_validate(r) for r in rows], next_cursor=cursor)
