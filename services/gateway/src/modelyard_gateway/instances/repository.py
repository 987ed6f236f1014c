"""Every SQL statement about model instances."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.pagination import PageParams, paginate_entity, where_given
from modelyard_gateway.db import GroupMember, InstanceState, ModelGroup, ModelInstance

SORTS = ("created_at", "name")


async def page(
    session: AsyncSession,
    *,
    workspace: str,
    params: PageParams,
    kind: str | None,
    enabled: bool | None,
) -> tuple[list[ModelInstance], str | None]:
    """Return one page of the workspace's instances and the next cursor."""
    stmt = select(ModelInstance).where(ModelInstance.workspace == workspace)
    stmt = where_given(stmt, ModelInstance, kind=kind, enabled=enabled)
    return await paginate_entity(session, stmt, ModelInstance, params=params, sorts=SORTS)


async def existing_ids(
    session: AsyncSession, *, workspace: str, ids: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    """Return which of `ids` are instances of the workspace."""
    wanted = list(ids)
    if not wanted:
        return set()
    rows = await session.scalars(
        select(ModelInstance.id).where(
            ModelInstance.workspace == workspace, ModelInstance.id.in_(wanted)
        )
    )
    return set(rows)


async def group_names_using(session: AsyncSession, *, instance_id: uuid.UUID) -> list[str]:
    """Return the names of the groups that list this instance."""
    rows = await session.scalars(
        select(ModelGroup.name)
        .join(GroupMember, GroupMember.group_id == ModelGroup.id)
        .where(GroupMember.instance_id == instance_id)
        .order_by(ModelGroup.name)
    )
    return list(rows)


async def states(
    session: AsyncSession, *, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, InstanceState]:
    """Return the shared health rows of these instances."""
    wanted = list(ids)
    if not wanted:
        return {}
    rows = await session.scalars(select(InstanceState).where(InstanceState.instance_id.in_(wanted)))
    return {row.instance_id: row for row in rows}


async def delete(session: AsyncSession, *, instance: ModelInstance) -> None:
    """Delete an instance row."""
    await session.delete(instance)
    await session.flush()


async def all_for_update(session: AsyncSession) -> list[ModelInstance]:
    """Return every instance of every workspace, locked until the transaction ends."""
    rows = await session.scalars(select(ModelInstance).order_by(ModelInstance.id).with_for_update())
    return list(rows)
