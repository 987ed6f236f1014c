"""Rules of provisioning: tokens with expiry, uses and default labels; self-registration."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.db import utcnow
from modelyard_common.device_identity import token_hash
from modelyard_common.errors import (
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    UnprocessableError,
    field_error,
)
from modelyard_common.messaging import Broker
from modelyard_common.pagination import Page, PageParams
from modelyard_common.row_views import view_of
from modelyard_deployer.db import ProvisioningToken
from modelyard_deployer.device_broker import BrokerLogins
from modelyard_deployer.devices.schemas import DeviceCreate, DeviceWithToken
from modelyard_deployer.devices.service import register_device
from modelyard_deployer.provisioning import repository, schemas
from modelyard_deployer.settings import DeployerSettings

PROVISIONING_TOKEN_PREFIX = "myprov_"


def to_schema(row: ProvisioningToken) -> schemas.ProvisioningToken:
    """Return the API view of a provisioning token."""
    return view_of(schemas.ProvisioningToken, row, revoked=row.revoked_at is not None)


async def create_token(
    session: AsyncSession,
    *,
    settings: DeployerSettings,
    principal: Principal,
    body: schemas.ProvisioningTokenCreate,
) -> schemas.ProvisioningTokenWithSecret:
    """Return a new provisioning token with its secret (shown only now)."""
    longest = int(settings.provisioning_max_ttl_h * 3600)
    if body.expires_in_s > longest:
        raise UnprocessableError(
            "The token would live longer than this deployer allows.",
            errors=[
                field_error(
                    ["body", "expires_in_s"],
                    message=f"at most {longest} seconds",
                    type="less_than_equal",
                )
            ],
        )
    secret = PROVISIONING_TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ProvisioningToken(
        workspace=principal.workspace,
        name=body.name,
        token_hash=token_hash(secret),
        labels=body.labels,
        expires_at=utcnow() + timedelta(seconds=body.expires_in_s),
        max_uses=body.max_uses,
        uses=0,
        created_by=principal.sub,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return schemas.ProvisioningTokenWithSecret(**to_schema(row).model_dump(), token=secret)


async def list_tokens(
    session: AsyncSession, *, principal: Principal, params: PageParams
) -> Page[schemas.ProvisioningToken]:
    """Return one page of the workspace's provisioning tokens."""
    rows, cursor = await repository.SORTING.page(
        session, repository.list_statement(workspace=principal.workspace), params
    )
    return Page[schemas.ProvisioningToken](
        items=[to_schema(row) for row in rows], next_cursor=cursor
    )


async def revoke_token(session: AsyncSession, *, principal: Principal, token_id: uuid.UUID) -> None:
    """Revoke a provisioning token: it registers nothing more (devices keep working)."""
    row = await repository.get(session, workspace=principal.workspace, token_id=token_id)
    if row is None:
        raise NotFoundError(f"No provisioning token {token_id} in this workspace.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()


async def register_with_token(
    session: AsyncSession,
    *,
    broker: Broker,
    logins: BrokerLogins,
    settings: DeployerSettings,
    secret: str | None,
    body: schemas.DeviceRegistration,
) -> DeviceWithToken:
    """Return a device registered by itself with a provisioning token (one use counted).

    An unknown token is 401; an expired or revoked one is 401 too (it proves nothing any more);
    one whose uses are spent is 403 (it is known, but may register no more devices).
    """
    if not secret or not secret.startswith(PROVISIONING_TOKEN_PREFIX):
        raise UnauthorizedError("A provisioning token (`myprov_...`) is required.")
    row = await repository.by_hash_for_update(session, token_hash(secret))
    if row is None:
        raise UnauthorizedError("The provisioning token is unknown.")
    if row.revoked_at is not None:
        raise UnauthorizedError("The provisioning token was revoked.")
    if row.expires_at <= utcnow():
        raise UnauthorizedError(
            f"The provisioning token expired at {row.expires_at.isoformat()}; ask for a new one."
        )
    if row.uses >= row.max_uses:
        raise ForbiddenError(
            f"The provisioning token has registered its {row.max_uses} device(s) already."
        )
    _check_fixed_labels(row, body.labels)
    row.uses += 1
    return await register_device(
        session,
        broker=broker,
        logins=logins,
        settings=settings,
        workspace=row.workspace,
        body=DeviceCreate(
            name=body.name,
            labels=dict(row.labels),
            advertise_host=body.advertise_host,
            ingress_port=body.ingress_port,
        ),
    )


def _check_fixed_labels(row: ProvisioningToken, sent: dict[str, str]) -> None:
    """Refuse labels a device sends that its provisioning token does not give it (422).

    Labels decide which deployments reach a device and which restricted models may run on it,
    so a device gets exactly its token's labels: it may repeat them, never add or change one.
    """
    wrong = {key: value for key, value in sent.items() if row.labels.get(key) != value}
    if wrong:
        raise UnprocessableError(
            "A device gets the labels of its provisioning token; it may not add or change any. "
            "Ask for a token with the labels this device needs, or have an editor label it.",
            errors=[
                field_error(
                    ["body", "labels", key],
                    message=(
                        f"the provisioning token gives {key}={row.labels[key]!r}"
                        if key in row.labels
                        else "the provisioning token gives no such label"
                    ),
                    type="label_not_granted",
                )
                for key in sorted(wrong)
            ],
        )
