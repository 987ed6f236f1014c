"""SQL of devices."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import (
    ColumnElement,
    Double,
    Interval,
    Select,
    and_,
    case,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.db import utcnow
from modelyard_common.sorting import Sorting
from modelyard_deployer.db import Device
from modelyard_deployer.devices.schemas import DeviceStatus
from modelyard_deployer.settings import DeployerSettings

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


def silence_allowed(settings: DeployerSettings) -> ColumnElement[timedelta]:
    """Return, per device row, the silence after which it reads offline (as
    `DeployerSettings.offline_after` computes it for one device)."""
    if settings.device_offline_after_s is not None:
        seconds: ColumnElement[float] = literal(settings.device_offline_after_s, Double)
    else:
        # The declared interval is stored within the bound already: least() is for rows
        # written before the bound was lowered (and not coalesce(least(..)): LEAST skips NULLs).
        interval = case(
            (Device.heartbeat_interval_s.is_(None), settings.heartbeat_interval_s),
            else_=func.least(Device.heartbeat_interval_s, settings.heartbeat_interval_max_s),
        )
        seconds = 2 * interval + settings.heartbeat_grace_s
    return func.make_interval(0, 0, 0, 0, 0, 0, seconds, type_=Interval)


def status_clause(status: DeviceStatus, settings: DeployerSettings) -> ColumnElement[bool]:
    """Return the condition of devices in a status."""
    if status is DeviceStatus.revoked:
        return Device.revoked_at.is_not(None)
    seen = and_(
        Device.last_seen_at.is_not(None),
        Device.last_seen_at + silence_allowed(settings) >= utcnow(),
    )
    if status is DeviceStatus.online:
        return and_(Device.revoked_at.is_(None), seen)
    return and_(Device.revoked_at.is_(None), or_(Device.last_seen_at.is_(None), ~seen))


def list_statement(
    *,
    workspace: str,
    labels: dict[str, str],
    status: DeviceStatus | None,
    name: str | None,
    settings: DeployerSettings,
) -> Select[Device]:
    """Return the query of a workspace's devices matching every filter."""
    stmt = select(Device).where(Device.workspace == workspace)
    if labels:
        stmt = stmt.where(Device.labels.contains(labels))
    if status is None:
        stmt = stmt.where(Device.revoked_at.is_(None))
    else:
        stmt = stmt.where(status_clause(status, settings))
    if name:
        stmt = stmt.where(Device.name.ilike(f"%{name}%"))
    return stmt
