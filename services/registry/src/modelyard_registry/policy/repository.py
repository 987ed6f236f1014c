"""SQL of the workspace policy."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.queries import scalar_row
from modelyard_registry.db import WorkspacePolicy


async def get(
    session: AsyncSession, workspace: str, *, for_update: bool = False
) -> WorkspacePolicy | None:
    """Return the workspace's chosen policy, if it chose one."""
    stmt = select(WorkspacePolicy).where(WorkspacePolicy.workspace == workspace)
    return await scalar_row(session, stmt, for_update=for_update)


async def upsert(
    session: AsyncSession,
    *,
    workspace: str,
    gate: str,
    comment: str,
    updated_by: str,
    updated_at: datetime,
) -> None:
    """Set the workspace's policy, creating its row the first time."""
    values = {"gate": gate, "comment": comment, "updated_by": updated_by, "updated_at": updated_at}
    stmt = insert(WorkspacePolicy).values(workspace=workspace, **values)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[WorkspacePolicy.workspace], set_=values)
    )
