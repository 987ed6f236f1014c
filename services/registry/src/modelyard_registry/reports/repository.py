"""Every SQL statement the reports read: a workspace's whole inventory, in stable order."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_registry.db import AIModel, AISystem, Evidence, SystemModelLink, SystemObligation


async def models(session: AsyncSession, *, workspace: str) -> list[AIModel]:
    """Return every model of the workspace, archived ones included, by name."""
    rows = await session.scalars(
        select(AIModel).where(AIModel.workspace == workspace).order_by(AIModel.name, AIModel.id)
    )
    return list(rows)


async def systems(session: AsyncSession, *, workspace: str) -> list[AISystem]:
    """Return every system of the workspace, by name."""
    rows = await session.scalars(
        select(AISystem).where(AISystem.workspace == workspace).order_by(AISystem.name, AISystem.id)
    )
    return list(rows)


async def links(session: AsyncSession, *, workspace: str) -> list[SystemModelLink]:
    """Return every link of the workspace."""
    rows = await session.scalars(
        select(SystemModelLink)
        .where(SystemModelLink.workspace == workspace)
        .order_by(SystemModelLink.system_id, SystemModelLink.model_id)
    )
    return list(rows)


async def obligations(session: AsyncSession, *, workspace: str) -> list[SystemObligation]:
    """Return every stored obligation status of the workspace."""
    rows = await session.scalars(
        select(SystemObligation)
        .where(SystemObligation.workspace == workspace)
        .order_by(SystemObligation.system_id, SystemObligation.code)
    )
    return list(rows)


async def evidence(
    session: AsyncSession, *, workspace: str, system_id: uuid.UUID | None = None
) -> list[Evidence]:
    """Return the workspace's evidence items (of one system if given), oldest first."""
    stmt = select(Evidence).where(Evidence.workspace == workspace)
    if system_id is not None:
        stmt = stmt.where(Evidence.system_id == system_id)
    return list(await session.scalars(stmt.order_by(Evidence.created_at, Evidence.id)))
