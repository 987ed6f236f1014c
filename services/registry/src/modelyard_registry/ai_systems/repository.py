"""Every SQL statement about AI systems."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.pagination import PageParams, paginate
from modelyard_registry.db import AISystem
from modelyard_registry.search import matches_text

SORT_COLUMNS = {
    "name": AISystem.name,
    "created_at": AISystem.created_at,
    "updated_at": AISystem.updated_at,
    "risk_level": AISystem.risk_level,
}


@dataclass(frozen=True)
class SystemFilters:
    q: str | None = None
    status: str | None = None
    risk_level: str | None = None
    tags: Sequence[str] = ()
    owner: str | None = None
    archived: bool | None = False
    ids: Sequence[uuid.UUID] = ()


async def get(
    session: AsyncSession, *, workspace: str, system_id: uuid.UUID, for_update: bool = False
) -> AISystem | None:
    """Return the workspace's system with this id, or None."""
    stmt = select(AISystem).where(AISystem.workspace == workspace, AISystem.id == system_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def name_taken(
    session: AsyncSession, *, workspace: str, name: str, exclude_id: uuid.UUID | None = None
) -> bool:
    """Return whether another system of the workspace has this name (case-insensitive)."""
    stmt = select(AISystem.id).where(
        AISystem.workspace == workspace, func.lower(AISystem.name) == name.lower()
    )
    if exclude_id is not None:
        stmt = stmt.where(AISystem.id != exclude_id)
    return (await session.scalar(stmt.limit(1))) is not None


def _filtered(workspace: str, filters: SystemFilters) -> Select[AISystem]:
    stmt = select(AISystem).where(AISystem.workspace == workspace)
    if filters.q:
        stmt = stmt.where(matches_text(AISystem.search, AISystem.name, filters.q))
    for column, value in (
        (AISystem.status, filters.status),
        (AISystem.risk_level, filters.risk_level),
        (AISystem.owner, filters.owner),
    ):
        if value:
            stmt = stmt.where(column == value)
    if filters.tags:
        stmt = stmt.where(AISystem.tags.overlap(list(filters.tags)))
    if filters.archived is not None:
        stmt = stmt.where(
            AISystem.archived_at.is_not(None)
            if filters.archived
            else AISystem.archived_at.is_(None)
        )
    if filters.ids:
        stmt = stmt.where(AISystem.id.in_(list(filters.ids)))
    return stmt


async def list_page(
    session: AsyncSession, *, workspace: str, filters: SystemFilters, params: PageParams
) -> tuple[list[AISystem], str | None]:
    """Return one page of the workspace's systems matching the filters."""
    return await paginate(
        session,
        _filtered(workspace, filters),
        params=params,
        columns=SORT_COLUMNS,
        id_column=AISystem.id,
    )
