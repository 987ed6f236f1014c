"""Rules of devices: registration with a one-time token, rotation, revocation, heartbeats."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.contracts import DEVICES_EXCHANGE, DeviceHeartbeat, device_routing_key
from modelyard_common.db import utcnow
from modelyard_common.errors import NotFoundError, ServiceUnavailableError
from modelyard_common.events import CloudEvent
from modelyard_common.http import check_if_match, make_etag
from modelyard_common.messaging import Binding, Broker
from modelyard_common.pagination import PageParams, paginate
from modelyard_deployer.db import Device
from modelyard_deployer.devices import repository
from modelyard_deployer.devices.auth import new_token
from modelyard_deployer.devices.schemas import Device as DeviceView
from modelyard_deployer.devices.schemas import (
    DeviceCreate,
    DeviceStatus,
    DeviceUpdate,
    DeviceWithToken,
)
from modelyard_deployer.settings import DeployerSettings

log = logging.getLogger("modelyard.deployer.devices")

SORTS = ("name", "created_at")


def status_of(device: Device, offline_after: timedelta) -> DeviceStatus:
    """Return whether a device is online, offline (silent too long) or revoked."""
    if device.revoked_at is not None:
        return DeviceStatus.revoked
    if device.last_seen_at is None or device.last_seen_at < utcnow() - offline_after:
        return DeviceStatus.offline
    return DeviceStatus.online


def to_schema(device: Device, settings: DeployerSettings) -> DeviceView:
    """Return the API view of a device."""
    return DeviceView(
        id=device.id,
        name=device.name,
        labels=device.labels,
        status=status_of(device, timedelta(seconds=settings.device_offline_after_s)),
        agent_version=device.agent_version,
        capabilities=device.capabilities,
        advertise_host=device.advertise_host,
        last_seen_at=device.last_seen_at,
        created_at=device.created_at,
        updated_at=device.updated_at,
        etag=make_etag(device.revision),
    )


async def ensure_device_queue(
    broker: Broker, settings: DeployerSettings, device_id: uuid.UUID
) -> None:
    """Declare the device's command queue, so commands wait there while it is offline.

    The outbox relay publishes commands as mandatory: without the queue they would be refused.
    """
    name = device_routing_key(device_id)
    if not broker.is_connected:
        raise ServiceUnavailableError("The message broker is unreachable; try again shortly.")
    try:
        await broker.declare_queue(
            name,
            [Binding(DEVICES_EXCHANGE, name)],
            delivery_limit=settings.consumer_delivery_limit,
        )
    except Exception as exc:
        log.warning("declaring %s failed: %s", name, exc)
        raise ServiceUnavailableError("The device's command queue could not be declared.") from exc


def _not_found(device_id: uuid.UUID) -> NotFoundError:
    return NotFoundError(f"No device {device_id} in this workspace.")


async def get_device_row(
    session: AsyncSession, *, principal: Principal, device_id: uuid.UUID
) -> Device:
    """Return a device of the caller's workspace (revoked ones included), or 404."""
    device = await repository.get(session, workspace=principal.workspace, device_id=device_id)
    if device is None:
        raise _not_found(device_id)
    return device


async def register_device(
    session: AsyncSession,
    *,
    broker: Broker,
    settings: DeployerSettings,
    principal: Principal,
    body: DeviceCreate,
) -> DeviceWithToken:
    """Return the new device with its token (the only time the token is shown)."""
    token, token_hash = new_token()
    device = Device(
        workspace=principal.workspace,
        name=body.name,
        labels=body.labels,
        token_hash=token_hash,
        capabilities={},
    )
    session.add(device)
    await session.flush()
    await ensure_device_queue(broker, settings, device.id)
    await session.refresh(device)
    return DeviceWithToken(**to_schema(device, settings).model_dump(), token=token)


async def get_device(
    session: AsyncSession, *, settings: DeployerSettings, principal: Principal, device_id: uuid.UUID
) -> DeviceView:
    """Return one device."""
    device = await get_device_row(session, principal=principal, device_id=device_id)
    return to_schema(device, settings)


async def list_devices(
    session: AsyncSession,
    *,
    settings: DeployerSettings,
    principal: Principal,
    labels: dict[str, str],
    status: DeviceStatus | None,
    name: str | None,
    params: PageParams,
) -> tuple[list[DeviceView], str | None]:
    """Return one page of the workspace's devices matching the filters."""
    stmt = repository.list_statement(
        workspace=principal.workspace,
        labels=labels,
        status=status,
        name=name,
        offline_after=timedelta(seconds=settings.device_offline_after_s),
    )
    rows, cursor = await paginate(
        session,
        stmt,
        params=params,
        columns={"name": Device.name, "created_at": Device.created_at},
        id_column=Device.id,
    )
    return [to_schema(row, settings) for row in rows], cursor


async def update_device(
    session: AsyncSession,
    *,
    settings: DeployerSettings,
    principal: Principal,
    device_id: uuid.UUID,
    body: DeviceUpdate,
    if_match: str | None,
) -> DeviceView:
    """Return the device after renaming it or replacing its labels."""
    device = await get_device_row(session, principal=principal, device_id=device_id)
    check_if_match(if_match, device.revision)
    if body.name is not None:
        device.name = body.name
    if body.labels is not None:
        device.labels = body.labels
    device.revision += 1
    await session.flush()
    await session.refresh(device)
    return to_schema(device, settings)


async def rotate_token(
    session: AsyncSession,
    *,
    settings: DeployerSettings,
    principal: Principal,
    device_id: uuid.UUID,
) -> DeviceWithToken:
    """Return the device with a new token; the old one stops working at once."""
    device = await get_device_row(session, principal=principal, device_id=device_id)
    if device.revoked_at is not None:
        raise _not_found(device_id)
    token, token_hash = new_token()
    device.token_hash = token_hash
    device.token_rotated_at = utcnow()
    device.revision += 1
    await session.flush()
    await session.refresh(device)
    return DeviceWithToken(**to_schema(device, settings).model_dump(), token=token)


async def revoke_device(
    session: AsyncSession, *, principal: Principal, device_id: uuid.UUID
) -> None:
    """Revoke a device: its token stops working; its history is kept."""
    device = await get_device_row(session, principal=principal, device_id=device_id)
    if device.revoked_at is not None:
        return
    device.revoked_at = utcnow()
    device.token_hash = None
    device.revision += 1
    await session.flush()


async def apply_heartbeat(
    session: AsyncSession, event: CloudEvent, *, offline_after: timedelta
) -> None:
    """Record a device's heartbeat: last seen, agent version, capabilities, advertised host."""
    try:
        heartbeat = DeviceHeartbeat.model_validate(event.data)
    except ValidationError:
        log.warning("ignoring unreadable heartbeat %s", event.id)
        return
    now = utcnow()
    # A fresh heartbeat counts as seen now, whatever the device's clock says (edge clocks
    # drift); one older than the offline window (a backlog after downtime) keeps its own time,
    # so a device that died meanwhile is not shown online.
    seen_at = now if heartbeat.sent_at > now - offline_after else heartbeat.sent_at
    await repository.record_heartbeat(
        session,
        device_id=heartbeat.device_id,
        seen_at=seen_at,
        agent_version=heartbeat.agent_version,
        capabilities=heartbeat.capabilities.model_dump(mode="json", exclude_none=True),
        advertise_host=heartbeat.advertise_host,
    )
