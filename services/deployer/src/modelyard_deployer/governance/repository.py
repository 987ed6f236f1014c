"""SQL of the registry model projection."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_deployer.db import ModelApproval, RegistryModel, WorkspacePolicy


async def get(session: AsyncSession, model_id: uuid.UUID) -> RegistryModel | None:
    """Return the projected model, if the deployer has heard of it."""
    return await session.scalar(select(RegistryModel).where(RegistryModel.id == model_id))


async def upsert(
    session: AsyncSession,
    *,
    model_id: uuid.UUID,
    workspace: str,
    name: str,
    archived: bool,
    deleted: bool,
    source_time: datetime,
) -> None:
    """Insert or update the projection, unless it already reflects a newer source."""
    stmt = insert(RegistryModel).values(
        id=model_id,
        workspace=workspace,
        name=name,
        archived=archived,
        deleted=deleted,
        source_time=source_time,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[RegistryModel.id],
        set_={
            "workspace": stmt.excluded.workspace,
            "name": stmt.excluded.name,
            "archived": stmt.excluded.archived,
            "deleted": stmt.excluded.deleted,
            "source_time": stmt.excluded.source_time,
            "updated_at": stmt.excluded.source_time,
        },
        # Events can arrive out of order; a deletion is final whatever comes after it.
        where=(RegistryModel.source_time <= stmt.excluded.source_time)
        & (RegistryModel.deleted.is_(False)),
    )
    await session.execute(stmt)


async def policy_time(session: AsyncSession, workspace: str) -> datetime | None:
    """Return the source time of the workspace's projected gate (None: never chosen)."""
    return await session.scalar(
        select(WorkspacePolicy.source_time).where(WorkspacePolicy.workspace == workspace)
    )


def governance_lock_key(*, workspace: str, model_id: uuid.UUID | None = None) -> str:
    """Return the advisory lock key of a workspace's gate, or of one model's approval."""
    return f"governance:{workspace}" if model_id is None else f"governance:model:{model_id}"


async def lock_governance(session: AsyncSession, keys: list[str], *, shared: bool) -> None:
    """Take transaction-scoped advisory locks on `keys`, in the order given."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    for key in keys:
        await session.execute(text(f"SELECT {function}(hashtext(:k))"), {"k": key})


async def approval_time(session: AsyncSession, model_id: uuid.UUID) -> datetime | None:
    """Return the source time of a model's projected approval (None: never heard of)."""
    return await session.scalar(
        select(ModelApproval.source_time).where(ModelApproval.model_id == model_id)
    )
