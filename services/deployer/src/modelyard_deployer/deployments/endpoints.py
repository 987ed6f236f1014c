"""OpenAI-compatible endpoints of deployments, announced to the gateway while they run."""

from __future__ import annotations

import logging
import uuid

from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.contracts import DeploymentState
from modelyard_common.device_identity import ingress_token
from modelyard_common.manifest import Protocol
from modelyard_deployer.db import Deployment, Device
from modelyard_deployer.deployments import fleet_repository as fleet
from modelyard_deployer.deployments import messages
from modelyard_deployer.settings import DeployerSettings
from modelyard_deployer.versions import repository as versions

log = logging.getLogger("modelyard.deployer.reports")


def endpoint_url(device: Device, deployment: Deployment, settings: DeployerSettings) -> str | None:
    """Return the URL other machines reach a deployment at: the device's ingress, registered."""
    if not device.advertise_host:
        return None
    host = device.advertise_host
    if ":" in host:
        host = f"[{host}]"
    port = device.ingress_port or settings.default_ingress_port
    return f"http://{host}:{port}/deployments/{deployment.id}"


def sealed_ingress_token(device: Device, settings: DeployerSettings) -> str | None:
    """Return the device's ingress credential sealed for the gateway (None if it has no token)."""
    if device.token_hash is None:
        return None
    credential = ingress_token(device.token_hash, device.id)
    return Fernet(settings.ingress_seal_key.encode()).encrypt(credential.encode()).decode()


async def follow_endpoint(
    session: AsyncSession,
    *,
    settings: DeployerSettings,
    deployment: Deployment,
    device: Device,
    force: bool = False,
) -> None:
    """Announce an OpenAI-compatible endpoint when it runs, withdraw it when not.

    With `force`, a running endpoint is announced again even if nothing changed here (a new
    device token, a new address, or a gateway group that asks what already runs).
    """
    wanted_url: str | None = None
    running_version_id = deployment.running_version_id
    serving = deployment.state == DeploymentState.running.value and device.revoked_at is None
    if serving and running_version_id is not None:
        version = await versions.get_any(session, running_version_id)
        if version is not None and version.manifest.get("protocol") == Protocol.openai:
            wanted_url = endpoint_url(device, deployment, settings)
            if wanted_url is None:
                log.warning("device %s has no registered address", device.id)
    announced = (deployment.base_url, deployment.endpoint_version_id)
    wanted = (wanted_url, deployment.running_version_id if wanted_url else None)
    if announced == wanted and not (force and wanted_url):
        return
    if deployment.base_url is not None and announced != wanted:
        await messages.announce_endpoint(
            session,
            ready=False,
            deployment=deployment,
            device=device,
            base_url=deployment.base_url,
            ingress_token_sealed=None,
        )
    if wanted_url is not None:
        await messages.announce_endpoint(
            session,
            ready=True,
            deployment=deployment,
            device=device,
            base_url=wanted_url,
            ingress_token_sealed=sealed_ingress_token(device, settings),
        )
    deployment.base_url, deployment.endpoint_version_id = wanted


async def reannounce_model(
    session: AsyncSession, *, settings: DeployerSettings, workspace: str, model_id: uuid.UUID
) -> int:
    """Announce again every running endpoint of a model in a workspace; return how many."""
    rows = await session.scalars(
        select(Deployment)
        .where(
            Deployment.workspace == workspace,
            Deployment.model_id == model_id,
            Deployment.base_url.is_not(None),
        )
        .order_by(Deployment.device_id, Deployment.id)
        .with_for_update()
    )
    count = 0
    for deployment in rows:
        device = await fleet.get_by_id(session, deployment.device_id)
        if device is None:
            continue
        await follow_endpoint(
            session, settings=settings, deployment=deployment, device=device, force=True
        )
        count += deployment.base_url is not None
    return count
