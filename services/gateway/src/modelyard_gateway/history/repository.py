"""Every SQL statement about the audit trail."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.pagination import PageParams, paginate
from modelyard_gateway.db import HistoryEntry

SORTS = ("at",)


async def page(
    session: AsyncSession, *, workspace: str, resource_id: uuid.UUID, params: PageParams
) -> tuple[list[HistoryEntry], str | None]:
    """Return one page of a resource's history entries and the next cursor."""
    stmt = select(HistoryEntry).where(
        HistoryEntry.workspace == workspace, HistoryEntry.resource_id == resource_id
    )
    return await paginate(
        session, stmt, params=params, columns={"at": HistoryEntry.at}, id_column=HistoryEntry.id
    )
