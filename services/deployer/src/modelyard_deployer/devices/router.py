"""Routes of `/v1/devices`: registration, tokens, listing, revocation."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from modelyard_common.auth import Editor, Viewer
from modelyard_common.db import SessionDep
from modelyard_common.errors import UnprocessableError, field_error
from modelyard_common.http import IfMatch
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_common.routes import Routes, no_content, with_etag
from modelyard_deployer.deps import BrokerDep, BrokerLoginsDep, SettingsDep, creates
from modelyard_deployer.devices import repository, service
from modelyard_deployer.devices.schemas import (
    Device,
    DeviceCreate,
    DeviceStatus,
    DeviceUpdate,
    DeviceWithToken,
)

router = APIRouter(prefix="/v1/devices", tags=["devices"])
devices = Routes(router, item="/{device_id}")

DevicePage = Annotated[PageParams, Depends(page_params("name", repository.SORTS))]


def label_filter(
    label: Annotated[
        list[str] | None,
        Query(description="`key=value`; repeat to require several labels."),
    ] = None,
) -> dict[str, str]:
    """Return the `label=key=value` query parameters as a mapping."""
    wanted: dict[str, str] = {}
    for item in label or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UnprocessableError(
                "A label filter is `key=value`.",
                errors=[
                    field_error(["query", "label"], message="expected key=value", type="format")
                ],
            )
        wanted[key] = value
    return wanted


@creates.route(
    devices,
    "create_device",
    "Register a device; its token is returned only here",
    problems=(401, 403, 422, 503),
    response_model=DeviceWithToken,
    location="/v1/devices/{id}",
    secret_fields=("token",),
)
async def create_device(
    body: DeviceCreate,
    session: SessionDep,
    principal: Editor,
    broker: BrokerDep,
    logins: BrokerLoginsDep,
    settings: SettingsDep,
) -> DeviceWithToken:
    return await service.register_device(
        session,
        broker=broker,
        logins=logins,
        settings=settings,
        workspace=principal.workspace,
        body=body,
    )


@devices.listing(
    "list_devices", "List devices, filtered by label, status or name", problems=(401, 422)
)
async def list_devices(
    session: SessionDep,
    principal: Viewer,
    settings: SettingsDep,
    params: DevicePage,
    labels: Annotated[dict[str, str], Depends(label_filter)],
    status: Annotated[
        DeviceStatus | None, Query(description="Without it, revoked devices are left out.")
    ] = None,
    name: Annotated[str | None, Query(max_length=200, description="Part of the name.")] = None,
) -> Page[Device]:
    return await service.list_devices(
        session,
        settings=settings,
        principal=principal,
        labels=labels,
        status=status,
        name=name,
        params=params,
    )


@devices.reading("get_device", "Get one device", problems=(401, 404))
async def get_device(
    device_id: uuid.UUID,
    session: SessionDep,
    principal: Viewer,
    settings: SettingsDep,
    response: Response,
) -> Device:
    return with_etag(
        response,
        await service.get_device(
            session, settings=settings, principal=principal, device_id=device_id
        ),
    )


@devices.changing(
    "update_device",
    "Rename a device or replace its labels (admins: also move it)",
    problems=(401, 403, 404, 412, 422, 428),
    description="`advertise_host` and `ingress_port` say where the gateway sends the device's "
    "traffic and its ingress credential: only a workspace admin changes them (403 naming the "
    "fields for anyone else), and the new address must pass the deployer's ingress policy "
    "(422). Labels are changed by workspace editors.",
)
async def update_device(
    device_id: uuid.UUID,
    body: DeviceUpdate,
    session: SessionDep,
    principal: Editor,
    settings: SettingsDep,
    response: Response,
    if_match: IfMatch = None,
) -> Device:
    return with_etag(
        response,
        await service.update_device(
            session,
            settings=settings,
            principal=principal,
            device_id=device_id,
            body=body,
            if_match=if_match,
        ),
    )


@devices.acting(
    "rotate_device_token",
    "Issue a new device token (the old one stops working)",
    problems=(401, 403, 404),
    subpath="/token",
)
async def rotate_device_token(
    device_id: uuid.UUID,
    session: SessionDep,
    principal: Editor,
    settings: SettingsDep,
    logins: BrokerLoginsDep,
) -> DeviceWithToken:
    return await service.rotate_token(
        session, logins=logins, settings=settings, principal=principal, device_id=device_id
    )


@devices.deleting(
    "revoke_device",
    "Revoke a device: token and broker login refused at once, deployments removed",
    problems=(401, 403, 404, 503),
)
async def revoke_device(
    device_id: uuid.UUID,
    session: SessionDep,
    principal: Editor,
    settings: SettingsDep,
    logins: BrokerLoginsDep,
) -> Response:
    await service.revoke_device(
        session, logins=logins, settings=settings, principal=principal, device_id=device_id
    )
    return no_content()
