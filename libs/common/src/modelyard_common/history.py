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
from sqlalchemy import DateTime, String, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from modelyard_common.auth import Principal
from modelyard_common.db import new_id, utcnow
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
            id=uuid.uuid4(),
            workspace=principal.workspace,
            resource_type=resource_type,
            resource_id=resource_id,
            action=action,
            actor=principal.sub,
            changes=changes,
        )
    )


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
