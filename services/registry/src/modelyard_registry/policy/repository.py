"""SQL of the workspace policy."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_registry.db import WorkspacePolicy


async def get(
    session: AsyncSession, workspace: str, *, for_update: bool = False
) -> WorkspacePolicy | None:
    """Return the workspace's chosen policy, if it chose one."""
    stmt = select(WorkspacePolicy).where(WorkspacePolicy.workspace == workspace)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)
