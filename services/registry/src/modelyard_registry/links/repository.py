"""Every SQL statement about system-model links."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_registry.db import AIModel, SystemModelLink


async def get(
    session: AsyncSession,
    *,
    workspace: str,
    system_id: uuid.UUID,
    model_id: uuid.UUID,
    for_update: bool = False,
) -> tuple[SystemModelLink, AIModel] | None:
    """Return a link with its model, or None."""
    stmt = (
        select(SystemModelLink, AIModel)
        .join(AIModel, AIModel.id == SystemModelLink.model_id)
        .where(
            SystemModelLink.workspace == workspace,
            SystemModelLink.system_id == system_id,
            SystemModelLink.model_id == model_id,
        )
    )
    if for_update:
        stmt = stmt.with_for_update(of=SystemModelLink)
    row = (await session.execute(stmt)).first()
    return (row[0], row[1]) if row else None


async def models_of_system(
    session: AsyncSession, *, workspace: str, system_id: uuid.UUID
) -> list[tuple[SystemModelLink, AIModel]]:
    """Return a system's links with their models, by model name."""
    rows = await session.execute(
        select(SystemModelLink, AIModel)
        .join(AIModel, AIModel.id == SystemModelLink.model_id)
        .where(SystemModelLink.workspace == workspace, SystemModelLink.system_id == system_id)
        .order_by(AIModel.name, AIModel.id)
    )
    return [(link, model) for link, model in rows.all()]
