"""What a change of a device does to its deployments: a new address or token, a revocation."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.contracts import CommandAction, DeploymentState, DesiredState
from modelyard_deployer.db import Device
from modelyard_deployer.deployments import fleet_repository as fleet
from modelyard_deployer.deployments import messages, repository
from modelyard_deployer.deployments.endpoints import follow_endpoint
from modelyard_deployer.deployments.resync import expected_on_device
from modelyard_deployer.settings import DeployerSettings


async def reannounce_device(
    session: AsyncSession, *, settings: DeployerSettings, device: Device
) -> None:
    """Announce a device's endpoints again (its token or address changed)."""
    for deployment in await fleet.deployments_on(session, device.id):
        await follow_endpoint(
            session, settings=settings, deployment=deployment, device=device, force=True
        )


async def retire_device(
    session: AsyncSession, *, settings: DeployerSettings, device: Device
) -> None:
    """Mark a revoked device's deployments removed in history and withdraw their endpoints."""
    for deployment in await fleet.deployments_on(session, device.id):
        if not expected_on_device(deployment):
            continue
        previous_state = deployment.state
        deployment.desired_state = DesiredState.removed.value
        deployment.state = DeploymentState.removed.value
        deployment.state_message = "device revoked"
        deployment.running_version_id = None
        deployment.revision += 1
        session.add(
            repository.deployer_entry(
                deployment,
                action=CommandAction.remove,
                message="device revoked: the deployment is removed from the fleet's view",
            )
        )
        await messages.announce_state(
            session, deployment=deployment, previous_state=previous_state, message="device revoked"
        )
        await follow_endpoint(session, settings=settings, deployment=deployment, device=device)
