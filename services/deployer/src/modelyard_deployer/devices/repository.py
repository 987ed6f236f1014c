"""SQL of devices."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.db import utcnow
from modelyard_common.sorting import Sorting
from modelyard_deployer.db import Device
from modelyard_deployer.devices.schemas import DeviceStatus

# What `sort` may name, and the column each orders by.
SORTING = Sorting({"name": Device.name, "created_at": Device.created_at}, id_column=Device.id)
SORTS = SORTING.names


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
