"""SQL of devices."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.db import utcnow
from modelyard_deployer.db import Device
from modelyard_deployer.devices.schemas import DeviceStatus


async def get(
    session: AsyncSession, *, workspace: str, device_id: uuid.UUID, include_revoked: bool = True
) -> Device | None:
    """Return a device of a workspace."""
    stmt = select(Device).where(Device.workspace == workspace, Device.id == device_id)
    if not include_revoked:
        stmt = stmt.where(Device.revoked_at.is_(None))
    return await session.scalar(stmt)


def status_clause(status: DeviceStatus, offline_after: timedelta) -> ColumnElement[bool]:
    """Return the condition of devices in a status."""
    threshold = utcnow() - offline_after
    if status is DeviceStatus.revoked:
        return Device.revoked_at.is_not(None)
    seen = and_(Device.last_seen_at.is_not(None), Device.last_seen_at >= threshold)
    if status is DeviceStatus.online:
        return and_(Device.revoked_at.is_(None), seen)
    return and_(Device.revoked_at.is_(None), or_(Device.last_seen_at.is_(None), ~seen))


def list_statement(
    *,
    workspace: str,
    labels: dict[str, str],
    status: DeviceStatus | None,
    name: str | None,
    offline_after: timedelta,
) -> Select[Device]:
    """Return the query of a workspace's devices matching every filter."""
    stmt = select(Device).where(Device.workspace == workspace)
    if labels:
        stmt = stmt.where(Device.labels.contains(labels))
    if status is None:
        stmt = stmt.where(Device.revoked_at.is_(None))
    else:
        stmt = stmt.where(status_clause(status, offline_after))
    if name:
        stmt = stmt.where(Device.name.ilike(f"%{name}%"))
    return stmt


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
