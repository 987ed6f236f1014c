"""Every SQL statement about model groups and their members."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.pagination import PageParams, paginate_entity, where_given
from modelyard_gateway.db import GroupMember, ModelGroup

SORTS = ("created_at", "name")


async def existing_names(
    session: AsyncSession, *, workspace: str, names: Sequence[str]
) -> set[str]:
    """Return which of `names` are groups of the workspace."""
    if not names:
        return set()
    rows = await session.scalars(
        select(ModelGroup.name).where(
            ModelGroup.workspace == workspace, ModelGroup.name.in_(list(names))
        )
    )
    return set(rows)


async def page(
    session: AsyncSession, *, workspace: str, params: PageParams, enabled: bool | None
) -> tuple[list[ModelGroup], str | None]:
    """Return one page of the workspace's groups and the next cursor."""
    stmt = select(ModelGroup).where(ModelGroup.workspace == workspace)
    stmt = where_given(stmt, ModelGroup, enabled=enabled)
    return await paginate_entity(session, stmt, ModelGroup, params=params, sorts=SORTS)


async def members(
    session: AsyncSession, *, group_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Return each group's instance ids in failover order."""
    if not group_ids:
        return {}
    rows = await session.execute(
        select(GroupMember.group_id, GroupMember.instance_id)
        .where(GroupMember.group_id.in_(list(group_ids)))
        .order_by(GroupMember.group_id, GroupMember.position)
    )
    result: dict[uuid.UUID, list[uuid.UUID]] = {gid: [] for gid in group_ids}
    for group_id, instance_id in rows:
        result[group_id].append(instance_id)
    return result


async def replace_members(
    session: AsyncSession, *, group_id: uuid.UUID, instance_ids: Sequence[uuid.UUID]
) -> None:
    """Set a group's instances to `instance_ids`, in that order."""
    await session.execute(delete(GroupMember).where(GroupMember.group_id == group_id))
    session.add_all(
        GroupMember(group_id=group_id, instance_id=iid, position=pos)
        for pos, iid in enumerate(instance_ids)
    )
    await session.flush()


async def delete_group(session: AsyncSession, *, group: ModelGroup) -> None:
    """Delete a group (its member rows go with it)."""
    await session.delete(group)
    await session.flush()
