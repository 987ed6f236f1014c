"""Every SQL statement about system-model links."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from modelyard_registry.db import AIModel, AISystem, SystemModelLink


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
    return await _with_other_end(
        session, AIModel, workspace=workspace, this_end=SystemModelLink.system_id, ident=system_id
    )


async def systems_of_model(
    session: AsyncSession, *, workspace: str, model_id: uuid.UUID
) -> list[tuple[SystemModelLink, AISystem]]:
    """Return a model's links with the systems using it, by system name."""
    return await _with_other_end(
        session, AISystem, workspace=workspace, this_end=SystemModelLink.model_id, ident=model_id
    )


End = TypeVar("End", AIModel, AISystem)


async def _with_other_end(
    session: AsyncSession,
    other: type[End],
    *,
    workspace: str,
    this_end: InstrumentedAttribute[uuid.UUID],
    ident: uuid.UUID,
) -> list[tuple[SystemModelLink, End]]:
    """Return the links whose `this_end` is `ident`, each with its `other` end, by its name."""
    other_end = SystemModelLink.model_id if other is AIModel else SystemModelLink.system_id
    rows = await session.execute(
        select(SystemModelLink, other)
        .join(other, other.id == other_end)
        .where(SystemModelLink.workspace == workspace, this_end == ident)
        .order_by(other.name, other.id)
    )
    return [(link, end) for link, end in rows.all()]
