"""SQL of the devices deployments target and agents report from (the rows, not their API)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_deployer.db import Deployment, Device


async def matching_selector(
    session: AsyncSession, *, workspace: str, selector: dict[str, str]
) -> list[Device]:
    """Return the live devices whose labels include every selector pair."""
    if not selector:
        return []
    rows = await session.scalars(
        select(Device)
        .where(
            Device.workspace == workspace,
            Device.revoked_at.is_(None),
            Device.labels.contains(selector),
        )
        .order_by(Device.name, Device.id)
    )
    return list(rows.all())


async def live_by_ids(
    session: AsyncSession, *, workspace: str, device_ids: list[uuid.UUID]
) -> list[Device]:
    """Return the live devices of a workspace among `device_ids`."""
    if not device_ids:
        return []
    rows = await session.scalars(
        select(Device).where(
            Device.workspace == workspace,
            Device.revoked_at.is_(None),
            Device.id.in_(device_ids),
        )
    )
    return list(rows.all())


async def get_by_id(session: AsyncSession, device_id: uuid.UUID) -> Device | None:
    """Return a device by id alone (for messages from its agent)."""
    return await session.scalar(select(Device).where(Device.id == device_id))


async def get_by_id_for_update(session: AsyncSession, device_id: uuid.UUID) -> Device | None:
    """Return a device by id alone, locked: its agent's messages apply one at a time."""
    return await session.scalar(select(Device).where(Device.id == device_id).with_for_update())


async def record_heartbeat(
    session: AsyncSession,
    *,
    device_id: uuid.UUID,
    seen_at: datetime,
    agent_version: str,
    capabilities: dict[str, object],
) -> bool:
    """Apply a heartbeat unless a newer one was applied already; return whether it was."""
    result = await session.execute(
        update(Device)
        .where(
            Device.id == device_id,
            Device.revoked_at.is_(None),
            or_(Device.last_seen_at.is_(None), Device.last_seen_at < seen_at),
        )
        .values(
            last_seen_at=seen_at,
            agent_version=agent_version,
            capabilities=capabilities,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def in_workspace(session: AsyncSession, *, workspace: str, device_id: uuid.UUID) -> bool:
    """Return whether the device exists in the workspace (revoked ones included)."""
    found = await session.scalar(
        select(Device.id).where(Device.workspace == workspace, Device.id == device_id)
    )
    return found is not None


async def deployments_on(session: AsyncSession, device_id: uuid.UUID) -> list[Deployment]:
    """Return every deployment of a device, locked, by id."""
    rows = await session.scalars(
        select(Deployment)
        .where(Deployment.device_id == device_id)
        .order_by(Deployment.id)
        .with_for_update()
    )
    return list(rows)
