"""Routes of provisioning tokens and of a device registering itself with one."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modelyard_common.auth import Editor
from modelyard_common.db import SessionDep
from modelyard_common.pagination import Page, PageParams, page_params
from modelyard_common.routes import Routes, no_content
from modelyard_deployer.deps import BrokerDep, BrokerLoginsDep, SettingsDep
from modelyard_deployer.devices.schemas import DeviceWithToken
from modelyard_deployer.provisioning import repository, schemas, service

router = APIRouter(prefix="/v1/provisioning-tokens", tags=["provisioning"])
registration_router = APIRouter(prefix="/v1/devices", tags=["provisioning"])
tokens = Routes(router, item="/{token_id}")

TokenPage = Annotated[PageParams, Depends(page_params("-created_at", repository.SORTS))]
_provisioning = HTTPBearer(auto_error=False, description="A provisioning token (`myprov_...`).")


@tokens.creating(
    "create_provisioning_token",
    "Issue a provisioning token (expiry, uses, default labels); shown only here",
    problems=(401, 403, 422),
)
async def create_provisioning_token(
    body: schemas.ProvisioningTokenCreate,
    session: SessionDep,
    principal: Editor,
    settings: SettingsDep,
) -> schemas.ProvisioningTokenWithSecret:
    return await service.create_token(session, settings=settings, principal=principal, body=body)


@tokens.listing(
    "list_provisioning_tokens",
    "List the workspace's provisioning tokens (never their secrets)",
    problems=(401, 403, 422),
)
async def list_provisioning_tokens(
    session: SessionDep, principal: Editor, params: TokenPage
) -> Page[schemas.ProvisioningToken]:
    return await service.list_tokens(session, principal=principal, params=params)


@tokens.deleting(
    "revoke_provisioning_token",
    "Revoke a provisioning token (devices it registered keep working)",
    problems=(401, 403, 404),
)
async def revoke_provisioning_token(
    token_id: uuid.UUID, session: SessionDep, principal: Editor
) -> Response:
    await service.revoke_token(session, principal=principal, token_id=token_id)
    return no_content()


@Routes(registration_router).creating(
    "register_device_with_provisioning_token",
    "A device registers itself with a provisioning token; its token is shown only here",
    problems=(401, 403, 422, 503),
    subpath="/register",
)
async def register_device(
    body: schemas.DeviceRegistration,
    session: SessionDep,
    broker: BrokerDep,
    logins: BrokerLoginsDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_provisioning)],
) -> DeviceWithToken:
    return await service.register_with_token(
        session,
        broker=broker,
        logins=logins,
        settings=settings,
        secret=credentials.credentials if credentials else None,
        body=body,
    )
