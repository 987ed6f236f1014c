"""Every SQL statement of the endpoint-event projection."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_gateway.db import GroupMember, ModelGroup, ModelInstance


async def bound_groups(session: AsyncSession, *, model_id: uuid.UUID) -> list[ModelGroup]:
    """Return every group (of any workspace) bound to this registry model."""
    rows = await session.scalars(
        select(ModelGroup).where(ModelGroup.registry_model_id == model_id).with_for_update()
    )
    return list(rows)


async def deployment_instance(
    session: AsyncSession, *, workspace: str, deployment_id: uuid.UUID
) -> ModelInstance | None:
    """Return the instance created for a deployment in a workspace, or None."""
    return await session.scalar(
        select(ModelInstance).where(
            ModelInstance.workspace == workspace, ModelInstance.deployment_id == deployment_id
        )
    )


async def is_member(session: AsyncSession, *, group_id: uuid.UUID, instance_id: uuid.UUID) -> bool:
    """Return whether the instance is in the group."""
    found = await session.scalar(
        select(GroupMember.position).where(
            GroupMember.group_id == group_id, GroupMember.instance_id == instance_id
        )
    )
    return found is not None


async def append_member(
    session: AsyncSession, *, group_id: uuid.UUID, instance_id: uuid.UUID
) -> None:
    """Put the instance last in the group's failover order."""
    last = await session.scalar(
        select(func.max(GroupMember.position)).where(GroupMember.group_id == group_id)
    )
    session.add(GroupMember(group_id=group_id, instance_id=instance_id, position=(last or 0) + 1))
    await session.flush()


async def remove_deployment_instances(session: AsyncSession, *, deployment_id: uuid.UUID) -> int:
    """Delete the instances created for a deployment (and their memberships); return how many."""
    ids = list(
        await session.scalars(
            select(ModelInstance.id).where(ModelInstance.deployment_id == deployment_id)
        )
    )
    if not ids:
        return 0
    await session.execute(delete(GroupMember).where(GroupMember.instance_id.in_(ids)))
    await session.execute(delete(ModelInstance).where(ModelInstance.id.in_(ids)))
    return len(ids)
