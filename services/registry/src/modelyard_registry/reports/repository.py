"""Every SQL statement the reports read: a workspace's whole inventory, in stable order."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from modelyard_registry.db import AIModel, AISystem, Evidence, SystemModelLink, SystemObligation

Row = TypeVar("Row", AIModel, AISystem, SystemModelLink, SystemObligation)


async def _every(
    session: AsyncSession, entity: type[Row], workspace: str, *order: InstrumentedAttribute[Any]
) -> list[Row]:
    """Return every row of `entity` in the workspace, in `order`."""
    rows = await session.scalars(
        select(entity).where(entity.workspace == workspace).order_by(*order)
    )
    return list(rows)


async def models(session: AsyncSession, *, workspace: str) -> list[AIModel]:
    """Return every model of the workspace, archived ones included, by name."""
    return await _every(session, AIModel, workspace, AIModel.name, AIModel.id)


async def systems(session: AsyncSession, *, workspace: str) -> list[AISystem]:
    """Return every system of the workspace, by name."""
    return await _every(session, AISystem, workspace, AISystem.name, AISystem.id)


async def links(session: AsyncSession, *, workspace: str) -> list[SystemModelLink]:
    """Return every link of the workspace."""
    return await _every(
        session, SystemModelLink, workspace, SystemModelLink.system_id, SystemModelLink.model_id
    )


async def obligations(session: AsyncSession, *, workspace: str) -> list[SystemObligation]:
    """Return every stored obligation status of the workspace."""
    return await _every(
        session, SystemObligation, workspace, SystemObligation.system_id, SystemObligation.code
    )


async def evidence(
    session: AsyncSession, *, workspace: str, system_id: uuid.UUID | None = None
) -> list[Evidence]:
    """Return the workspace's evidence items (of one system if given), oldest first."""
    stmt = select(Evidence).where(Evidence.workspace == workspace)
    if system_id is not None:
        stmt = stmt.where(Evidence.system_id == system_id)
    return list(await session.scalars(stmt.order_by(Evidence.created_at, Evidence.id)))
