"""Every SQL statement about AI models."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.pagination import PageParams, paginate
from modelyard_registry.db import AIModel, AISystem, SystemModelLink
from modelyard_registry.search import matches_text

SORT_COLUMNS = {
    "name": AIModel.name,
    "created_at": AIModel.created_at,
    "updated_at": AIModel.updated_at,
}


@dataclass(frozen=True)
class ModelFilters:
    q: str | None = None
    learning_type: str | None = None
    tags: Sequence[str] = ()
    provider: str | None = None
    archived: bool | None = False
    ids: Sequence[uuid.UUID] = ()
    approval: Sequence[str] = ()


async def get(
    session: AsyncSession, *, workspace: str, model_id: uuid.UUID, for_update: bool = False
) -> AIModel | None:
    """Return the workspace's model with this id, or None."""
    stmt = select(AIModel).where(AIModel.workspace == workspace, AIModel.id == model_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def name_taken(
    session: AsyncSession, *, workspace: str, name: str, exclude_id: uuid.UUID | None = None
) -> bool:
    """Return whether another model of the workspace has this name (case-insensitive)."""
    stmt = select(AIModel.id).where(
        AIModel.workspace == workspace, func.lower(AIModel.name) == name.lower()
    )
    if exclude_id is not None:
        stmt = stmt.where(AIModel.id != exclude_id)
    return (await session.scalar(stmt.limit(1))) is not None


def _filtered(workspace: str, filters: ModelFilters) -> Select[AIModel]:
    stmt = select(AIModel).where(AIModel.workspace == workspace)
    if filters.q:
        stmt = stmt.where(matches_text(AIModel.search, AIModel.name, filters.q))
    if filters.learning_type:
        stmt = stmt.where(AIModel.learning_type == filters.learning_type)
    if filters.tags:
        stmt = stmt.where(AIModel.tags.overlap(list(filters.tags)))
    if filters.provider:
        stmt = stmt.where(AIModel.provider == filters.provider)
    if filters.archived is not None:
        stmt = stmt.where(
            AIModel.archived_at.is_not(None) if filters.archived else AIModel.archived_at.is_(None)
        )
    if filters.ids:
        stmt = stmt.where(AIModel.id.in_(list(filters.ids)))
    if filters.approval:
        stmt = stmt.where(AIModel.approval.in_(list(filters.approval)))
    return stmt


async def list_page(
    session: AsyncSession, *, workspace: str, filters: ModelFilters, params: PageParams
) -> tuple[list[AIModel], str | None]:
    """Return one page of the workspace's models matching the filters."""
    return await paginate(
        session,
        _filtered(workspace, filters),
        params=params,
        columns=SORT_COLUMNS,
        id_column=AIModel.id,
    )


async def systems_using(
    session: AsyncSession, *, workspace: str, model_id: uuid.UUID
) -> list[tuple[SystemModelLink, AISystem]]:
    """Return the links of a model with the systems on their other end, by system name."""
    rows = await session.execute(
        select(SystemModelLink, AISystem)
        .join(AISystem, AISystem.id == SystemModelLink.system_id)
        .where(SystemModelLink.workspace == workspace, SystemModelLink.model_id == model_id)
        .order_by(AISystem.name, AISystem.id)
    )
    return [(link, system) for link, system in rows.all()]
