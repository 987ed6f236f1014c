"""Which deployments (and models, devices) a caller may see and act on; 404 for the others."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.errors import NotFoundError
from modelyard_deployer.access.schemas import AccessLevel
from modelyard_deployer.access.service import require_row_access
from modelyard_deployer.db import Deployment
from modelyard_deployer.deployments import fleet_repository as fleet
from modelyard_deployer.deployments import repository


def not_found(deployment_id: uuid.UUID) -> NotFoundError:
    return NotFoundError(f"No deployment {deployment_id} you may see in this workspace.")


async def visible_deployment(
    session: AsyncSession,
    *,
    principal: Principal,
    deployment_id: uuid.UUID,
    level: AccessLevel,
    for_update: bool = False,
) -> Deployment:
    """Return a deployment the principal may act on at `level` (404 if it may not see it)."""
    deployment = await repository.get(
        session,
        workspace=principal.workspace,
        deployment_id=deployment_id,
        for_update=for_update,
    )
    return await require_row_access(
        session, principal, deployment, level, missing=not_found(deployment_id)
    )


async def require_device(
    session: AsyncSession, *, principal: Principal, device_id: uuid.UUID
) -> None:
    """Raise 404 unless the device is one of the caller's workspace (revoked ones included)."""
    if not await fleet.in_workspace(session, workspace=principal.workspace, device_id=device_id):
        raise NotFoundError(f"No device {device_id} in this workspace.")
