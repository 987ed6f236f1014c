"""SQL of the devices deployments target and agents report from (the rows, not their API)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_deployer.db import Deployment, Device
from modelyard_deployer.deployments.bounds import HealthBounds

# Health columns as `unnest` takes them: one array parameter each, whatever the list's length
# (a row of parameters per deployment would meet asyncpg's 32,767-parameter limit).
HEALTH_COLUMNS = {
    "probe_ok": "boolean",
    "probe_status": "integer",
    "probe_error": "varchar",
    "probed_at": "timestamptz",
    "restarts": "integer",
    "memory_mb": "double precision",
    "memory_limit_mb": "double precision",
    "cpu_percent": "double precision",
    "sampled_at": "timestamptz",
}
_COLUMNS = ", ".join(HEALTH_COLUMNS)
_ARRAYS = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in HEALTH_COLUMNS.items())
_UPDATES = ", ".join(f"{name} = excluded.{name}" for name in [*HEALTH_COLUMNS, "reported_at"])
# The device's own deployments only: an id it does not hold (unknown, or another device's)
# finds no row to join and is never written. A heartbeat older than the stored health (two in
# flight) leaves it.
RECORD_HEALTH = text(
    f"""
    INSERT INTO deployer.deployment_health (deployment_id, {_COLUMNS}, reported_at)
    SELECT h.deployment_id, {", ".join(f"h.{name}" for name in HEALTH_COLUMNS)}, :reported_at
    FROM unnest(CAST(:deployment_ids AS uuid[]), {_ARRAYS})
        AS h(deployment_id, {_COLUMNS})
    JOIN deployer.deployments d ON d.id = h.deployment_id AND d.device_id = :device_id
    ON CONFLICT (deployment_id) DO UPDATE SET {_UPDATES}
    WHERE deployment_health.reported_at <= excluded.reported_at
    """
)


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
    interval_s: float | None,
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
            heartbeat_interval_s=interval_s,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def record_health(
    session: AsyncSession,
    *,
    device_id: uuid.UUID,
    reported_at: datetime,
    health: dict[uuid.UUID, HealthBounds],
) -> None:
    """Store each listed deployment's health, in one statement, for the device's own only."""
    if not health:
        return
    params: dict[str, object] = {
        "device_id": device_id,
        "reported_at": reported_at,
        "deployment_ids": list(health),
    }
    for name in HEALTH_COLUMNS:
        params[name] = [getattr(entry, name) for entry in health.values()]
    await session.execute(RECORD_HEALTH, params)


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
