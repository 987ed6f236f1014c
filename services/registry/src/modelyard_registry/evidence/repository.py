"""Every SQL statement about evidence items."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from modelyard_common.pagination import PageParams, paginate
from modelyard_common.queries import scalar_row
from modelyard_registry.db import Evidence

SORT_COLUMNS = {"created_at": Evidence.created_at, "updated_at": Evidence.updated_at}


@dataclass(frozen=True)
class EvidenceFilters:
    system_id: uuid.UUID | None = None
    model_id: uuid.UUID | None = None
    type: str | None = None
    expires_by: date | None = None


async def get(
    session: AsyncSession,
    *,
    workspace: str,
    evidence_id: uuid.UUID,
    for_update: bool = False,
    with_content: bool = False,
) -> Evidence | None:
    """Return the workspace's evidence item with this id, or None."""
    stmt = select(Evidence).where(Evidence.workspace == workspace, Evidence.id == evidence_id)
    if with_content:
        stmt = stmt.options(undefer(Evidence.file_content))
    return await scalar_row(session, stmt, for_update=for_update)


async def list_page(
    session: AsyncSession, *, workspace: str, filters: EvidenceFilters, params: PageParams
) -> tuple[list[Evidence], str | None]:
    """Return one page of the workspace's evidence items matching the filters."""
    stmt = select(Evidence).where(Evidence.workspace == workspace)
    if filters.system_id:
        stmt = stmt.where(Evidence.system_id == filters.system_id)
    if filters.model_id:
        stmt = stmt.where(Evidence.model_id == filters.model_id)
    if filters.type:
        stmt = stmt.where(Evidence.type == filters.type)
    if filters.expires_by is not None:
        stmt = stmt.where(Evidence.expires_on <= filters.expires_by)
    return await paginate(session, stmt, params=params, columns=SORT_COLUMNS, id_column=Evidence.id)
