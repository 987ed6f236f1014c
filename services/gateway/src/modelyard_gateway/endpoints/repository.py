"""Every SQL statement of the endpoint-event projection."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.db import utcnow
from modelyard_gateway.db import (
    DeviceEndpoint,
    EndpointSequence,
    GroupMember,
    ModelGroup,
    ModelInstance,
)


async def advance_sequence(
    session: AsyncSession, *, deployment_id: uuid.UUID, sequence: int
) -> bool:
    """Record `sequence` as the deployment's last applied one; False if it is not newer.

    The row is locked until the transaction ends, so two replicas apply one deployment's
    events one at a time.
    """
    await session.execute(
        insert(EndpointSequence)
        .values(deployment_id=deployment_id, sequence=0)
        .on_conflict_do_nothing(index_elements=[EndpointSequence.deployment_id])
    )
    row = await session.scalar(
        select(EndpointSequence)
        .where(EndpointSequence.deployment_id == deployment_id)
        .with_for_update()
    )
    assert row is not None
    if sequence <= row.sequence:
        return False
    row.sequence = sequence
    row.updated_at = utcnow()
    return True


async def record_endpoint(
    session: AsyncSession,
    *,
    deployment_id: uuid.UUID,
    workspace: str | None,
    model_id: uuid.UUID,
    host: str,
    port: int,
    path: str,
) -> None:
    """Remember where a deployment runs (its device's ingress address and its path there)."""
    values = {
        "workspace": workspace,
        "model_id": model_id,
        "host": host.lower().rstrip("."),
        "port": port,
        "path": path,
        "updated_at": utcnow(),
    }
    stmt = insert(DeviceEndpoint).values(deployment_id=deployment_id, **values)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[DeviceEndpoint.deployment_id], set_=values)
    )


async def forget_endpoint(session: AsyncSession, *, deployment_id: uuid.UUID) -> bool:
    """Forget a deployment's address (it no longer runs there); return whether one was known."""
    result = await session.execute(
        delete(DeviceEndpoint)
        .where(DeviceEndpoint.deployment_id == deployment_id)
        .returning(DeviceEndpoint.deployment_id)
    )
    return result.first() is not None


async def bound_groups(
    session: AsyncSession, *, model_id: uuid.UUID, workspace: str | None
) -> list[ModelGroup]:
    """Return the groups bound to this registry model (in the deployment's workspace)."""
    stmt = select(ModelGroup).where(ModelGroup.registry_model_id == model_id)
    if workspace is not None:
        stmt = stmt.where(ModelGroup.workspace == workspace)
    rows = await session.scalars(stmt.with_for_update())
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


def endpoint_rank(
    priority: dict[str, Any] | None, labels: dict[str, str] | None, deployment_id: uuid.UUID
) -> tuple[int, str]:
    """Return the sort key of a deployment instance under a group's label priority."""
    if not priority:
        return (0, str(deployment_id))
    values: list[str] = priority.get("values") or []
    value = (labels or {}).get(priority.get("label", ""))
    return (values.index(value) if value in values else len(values), str(deployment_id))


async def reorder_members(session: AsyncSession, *, group: ModelGroup) -> None:
    """Renumber a group: its deployments first, by label priority, then hand-made instances.

    Deployments on devices come first because what a person adds by hand next to them is
    usually the fallback (a cloud API); hand-made instances keep their relative order.
    """
    rows = (
        await session.execute(
            select(GroupMember, ModelInstance)
            .join(ModelInstance, ModelInstance.id == GroupMember.instance_id)
            .where(GroupMember.group_id == group.id)
            .order_by(GroupMember.position)
        )
    ).all()
    deployed = sorted(
        ((member, inst) for member, inst in rows if inst.deployment_id is not None),
        key=lambda pair: endpoint_rank(
            group.endpoint_priority,
            pair[1].device_labels,
            pair[1].deployment_id or uuid.UUID(int=0),
        ),
    )
    manual = [(member, inst) for member, inst in rows if inst.deployment_id is None]
    for position, (member, _) in enumerate([*deployed, *manual], start=1):
        member.position = position
    await session.flush()


async def drop_deployment_members(session: AsyncSession, *, group_id: uuid.UUID) -> None:
    """Take a group's deployment instances out of it (the group is bound to another model)."""
    deployed = select(ModelInstance.id).where(ModelInstance.deployment_id.is_not(None))
    await session.execute(
        delete(GroupMember).where(
            GroupMember.group_id == group_id, GroupMember.instance_id.in_(deployed)
        )
    )
