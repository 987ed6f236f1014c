"""Every SQL statement about system obligations."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.queries import scalar_row
from modelyard_registry.db import SystemObligation


async def of_system(session: AsyncSession, *, system_id: uuid.UUID) -> dict[str, SystemObligation]:
    """Return the stored obligation rows of a system by code."""
    rows = await session.scalars(
        select(SystemObligation).where(SystemObligation.system_id == system_id)
    )
    return {row.code: row for row in rows}


async def get(
    session: AsyncSession, *, system_id: uuid.UUID, code: str, for_update: bool = False
) -> SystemObligation | None:
    """Return one stored obligation row, or None when it was never touched."""
    stmt = select(SystemObligation).where(
        SystemObligation.system_id == system_id, SystemObligation.code == code
    )
    return await scalar_row(session, stmt, for_update=for_update)
