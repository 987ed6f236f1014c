"""Rules of devices: registration with a one-time token, rotation, revocation, heartbeats."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal, Role
from modelyard_common.db import utcnow
from modelyard_common.errors import ForbiddenError, NotFoundError, field_error
from modelyard_common.http import check_if_match, make_etag
from modelyard_common.messaging import Broker
from modelyard_common.pagination import Page, PageParams
from modelyard_common.row_views import view_of
from modelyard_deployer.db import Device
from modelyard_deployer.deployments import device_changes
from modelyard_deployer.device_broker import BrokerLogins, ensure_device_queue
from modelyard_deployer.device_tokens import new_token
from modelyard_deployer.devices import repository
from modelyard_deployer.devices.ingress import IngressPolicy, check_ingress
from modelyard_deployer.devices.schemas import Device as DeviceView
from modelyard_deployer.devices.schemas import (
    DeviceCreate,
    DeviceStatus,
    DeviceUpdate,
    DeviceWithToken,
)
from modelyard_deployer.settings import DeployerSettings

# Where the gateway sends a device's traffic and its ingress credential: set at registration,
# changed afterwards by a workspace admin only.
ADDRESS_FIELDS = ("advertise_host", "ingress_port")


def status_of(device: Device, settings: DeployerSettings) -> DeviceStatus:
    """Return whether a device is online, offline (silent for two of its heartbeat intervals
    plus the grace) or revoked."""
    if device.revoked_at is not None:
        return DeviceStatus.revoked
    # Clamped again on read, as the status filter does: the bound may have been lowered since.
    offline_after = settings.offline_after(settings.declared_interval(device.heartbeat_interval_s))
    if device.last_seen_at is None or device.last_seen_at < utcnow() - offline_after:
        return DeviceStatus.offline
    return DeviceStatus.online


def to_schema(device: Device, settings: DeployerSettings) -> DeviceView:
    """Return the API view of a device."""
    return view_of(
        DeviceView,
        device,
        status=status_of(device, settings),
        etag=make_etag(device.revision),
    )


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
    logins: BrokerLogins,
    settings: DeployerSettings,
    workspace: str,
    body: DeviceCreate,
) -> DeviceWithToken:
    """Return the new device with its token (the only time the token is shown).

    The device gets its command queue and its own broker login (permissions to that queue and
    to its own reports only) before the answer goes out. Its address must pass the ingress
    policy (422 naming the field otherwise).
    """
    await check_ingress(
        IngressPolicy.from_settings(settings), host=body.advertise_host, port=body.ingress_port
    )
    token, token_hash = new_token()
    device = Device(
        workspace=workspace,
        name=body.name,
        labels=body.labels,
        token_hash=token_hash,
        capabilities={},
        advertise_host=body.advertise_host,
        ingress_port=body.ingress_port,
    )
    session.add(device)
    await session.flush()
    await ensure_device_queue(broker, settings, device.id)
    await logins.grant(device.id, token)
    await session.refresh(device)
    return _with_token(device, token, settings)


def _with_token(device: Device, token: str, settings: DeployerSettings) -> DeviceWithToken:
    return DeviceWithToken(
        **to_schema(device, settings).model_dump(),
        token=token,
        broker_url=settings.device_broker_url,
    )


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
) -> Page[DeviceView]:
    """Return one page of the workspace's devices matching the filters."""
    stmt = repository.list_statement(
        workspace=principal.workspace,
        labels=labels,
        status=status,
        name=name,
        settings=settings,
    )
    rows, cursor = await repository.SORTING.page(session, stmt, params)
    return Page[DeviceView](items=[to_schema(row, settings) for row in rows], next_cursor=cursor)


async def update_device(
    session: AsyncSession,
    *,
    settings: DeployerSettings,
    principal: Principal,
    device_id: uuid.UUID,
    body: DeviceUpdate,
    if_match: str | None,
) -> DeviceView:
    """Return the device after renaming it, replacing its labels or (admins) moving it.

    Its address decides where the gateway sends prompts and the ingress credential, so only a
    workspace admin changes it (403 naming the fields for anyone else, and nothing changes),
    and the new address must pass the ingress policy.
    """
    device = await get_device_row(session, principal=principal, device_id=device_id)
    moves = {
        field: getattr(body, field)
        for field in ADDRESS_FIELDS
        if getattr(body, field) is not None and getattr(body, field) != getattr(device, field)
    }
    if moves and not principal.has_role(Role.admin):
        raise ForbiddenError(
            "Only a workspace admin changes where a device is reached "
            f"({', '.join(moves)}); the device's own registration sets it.",
            errors=[
                field_error(
                    ["body", field],
                    message="only a workspace admin may change it",
                    type="forbidden",
                )
                for field in moves
            ],
        )
    check_if_match(if_match, device.revision)
    if moves:
        await check_ingress(
            IngressPolicy.from_settings(settings),
            host=moves.get("advertise_host", device.advertise_host),
            port=moves.get("ingress_port", device.ingress_port),
        )
    if body.name is not None:
        device.name = body.name
    if body.labels is not None:
        device.labels = body.labels
    for field, value in moves.items():
        setattr(device, field, value)
    moved = bool(moves)
    device.revision += 1
    await session.flush()
    if moved:
        await device_changes.reannounce_device(session, settings=settings, device=device)
    await session.refresh(device)
    return to_schema(device, settings)


async def rotate_token(
    session: AsyncSession,
    *,
    logins: BrokerLogins,
    settings: DeployerSettings,
    principal: Principal,
    device_id: uuid.UUID,
) -> DeviceWithToken:
    """Return the device with a new token; the old one stops working at once.

    Its broker login is re-keyed (open sessions closed) and its endpoints are announced again
    with the new ingress credential.
    """
    device = await get_device_row(session, principal=principal, device_id=device_id)
    if device.revoked_at is not None:
        raise _not_found(device_id)
    token, token_hash = new_token()
    device.token_hash = token_hash
    device.token_rotated_at = utcnow()
    device.revision += 1
    await session.flush()
    await logins.grant(device.id, token)
    await device_changes.reannounce_device(session, settings=settings, device=device)
    await session.refresh(device)
    return _with_token(device, token, settings)


async def revoke_device(
    session: AsyncSession,
    *,
    logins: BrokerLogins,
    settings: DeployerSettings,
    principal: Principal,
    device_id: uuid.UUID,
) -> None:
    """Revoke a device: token and broker login refused at once, its deployments removed.

    Its history is kept; registering the machine again makes a new device.
    """
    device = await get_device_row(session, principal=principal, device_id=device_id)
    if device.revoked_at is not None:
        return
    device.revoked_at = utcnow()
    device.token_hash = None
    device.revision += 1
    await session.flush()
    await device_changes.retire_device(session, settings=settings, device=device)
    await logins.revoke(device.id)
    logins.sweep_later(device.id)
