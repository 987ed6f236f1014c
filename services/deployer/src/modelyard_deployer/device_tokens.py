"""Device tokens: issued once, stored as SHA-256 only, presented as `Authorization: Bearer`."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal, authenticate
from modelyard_common.db import SessionDep
from modelyard_common.device_identity import token_hash
from modelyard_common.errors import UnauthorizedError
from modelyard_deployer.db import Device

# A fixed prefix tells a device token from a user's JWT on routes both may call.
DEVICE_TOKEN_PREFIX = "mydev_"


def hash_token(token: str) -> str:
    """Return the stored form of a device token (the same on the device, see device_identity)."""
    return token_hash(token)


def new_token() -> tuple[str, str]:
    """Return a fresh device token and its hash."""
    token = DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_token(token)


def is_device_token(token: str) -> bool:
    """Return whether a bearer token is a device token (rather than a JWT)."""
    return token.startswith(DEVICE_TOKEN_PREFIX)


async def device_for_token(session: AsyncSession, token: str) -> Device | None:
    """Return the live (not revoked) device holding `token`."""
    return await session.scalar(
        select(Device).where(Device.token_hash == hash_token(token), Device.revoked_at.is_(None))
    )


_bearer = HTTPBearer(auto_error=False, description="A user's JWT, or a device token (`mydev_...`).")


async def artifact_caller(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal | Device:
    """Return who is downloading: a device (by its token) or a user (by a JWT)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("A bearer token (user JWT or device token) is required.")
    token = credentials.credentials
    if is_device_token(token):
        device = await device_for_token(session, token)
        if device is None:
            raise UnauthorizedError("The device token is unknown or revoked.")
        return device
    return await authenticate(request, token)


ArtifactCaller = Annotated[Principal | Device, Depends(artifact_caller)]
