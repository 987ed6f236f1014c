"""Sending a device its deployments' desired state again (new epoch, or left out of a heartbeat)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.contracts import (
    CommandAction,
    DeploymentState,
    DesiredState,
    DeviceHeartbeat,
)
from modelyard_common.db import utcnow
from modelyard_deployer.db import Deployment, Device
from modelyard_deployer.deployments import fleet_repository as fleet
from modelyard_deployer.deployments.dispatch import CommandQueue
from modelyard_deployer.settings import DeployerSettings

# A deployment the heartbeat leaves out is re-sent only once its last command had time to land.
RESEND_GRACE = timedelta(seconds=15)
ACTION_FOR_DESIRED = {
    DesiredState.running.value: CommandAction.deploy,
    DesiredState.stopped.value: CommandAction.stop,
    DesiredState.removed.value: CommandAction.remove,
}


async def reconcile_listing(
    session: AsyncSession,
    *,
    settings: DeployerSettings,
    device: Device,
    heartbeat: DeviceHeartbeat,
) -> None:
    """Re-send the desired state of deployments the device does not hold as expected."""
    held: dict[str, int] = {}
    for item in heartbeat.deployments:
        try:
            held[str(uuid.UUID(str(item.get("deployment_id"))))] = int(item.get("generation", 0))
        except (TypeError, ValueError):
            continue
    settled = utcnow() - RESEND_GRACE
    behind = [
        deployment
        for deployment in await fleet.deployments_on(session, device.id)
        if deployment.updated_at < settled
        and expected_on_device(deployment)
        and held.get(str(deployment.id), 0) < deployment.generation
    ]
    if behind:
        await resend_desired_state(
            session,
            settings=settings,
            deployments=behind,
            message="the device's heartbeat did not list this deployment at its generation; "
            "desired state re-sent",
        )


def expected_on_device(deployment: Deployment) -> bool:
    """Return whether the device should still hold this deployment."""
    return not (
        deployment.desired_state == DesiredState.removed.value
        and deployment.state == DeploymentState.removed.value
    )


async def resend_desired_state(
    session: AsyncSession,
    *,
    settings: DeployerSettings,
    deployments: list[Deployment],
    message: str,
) -> None:
    """Queue each deployment's current command again (same generation) and note it in history."""
    commands = CommandQueue(session, settings=settings)
    for deployment in deployments:
        action = ACTION_FOR_DESIRED.get(deployment.desired_state, CommandAction.deploy)
        await commands.queue(deployment, action=action, message=message)
    await session.flush()
