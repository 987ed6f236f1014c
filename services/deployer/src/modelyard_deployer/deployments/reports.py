"""Agent reports: a deployment's history grows, its state follows the newest report only.

Reports of one deployment are applied one at a time (row lock). A report whose sequence is not
higher than the last applied one is late: it is kept in the history (`applied: false`), since it
did happen on the device, but it does not move the state back. A report about an older command
generation than the one that last reset the state (a redeploy, rollback or cancel) is history
only, for the same reason.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.contracts import DeploymentReport, DeploymentState
from modelyard_common.db import utcnow
from modelyard_common.events import CloudEvent
from modelyard_common.manifest import Protocol
from modelyard_deployer.db import Deployment, Device
from modelyard_deployer.deployments import messages, repository
from modelyard_deployer.devices import repository as devices
from modelyard_deployer.versions import repository as versions

log = logging.getLogger("modelyard.deployer.reports")


async def apply_report(session: AsyncSession, event: CloudEvent) -> None:
    """Record one `agent.deployment.reported` event and move the deployment's state."""
    try:
        report = DeploymentReport.model_validate(event.data)
    except ValidationError:
        log.warning("ignoring unreadable deployment report %s", event.id)
        return
    deployment = await repository.get_for_report(session, report.deployment_id)
    if deployment is None or deployment.device_id != report.device_id:
        # Not ours, or a device speaking for another's deployment: nothing to apply.
        log.warning("ignoring report %s for unknown deployment %s", event.id, report.deployment_id)
        return
    applies = report.sequence > deployment.last_sequence
    moves_state = applies and report.generation >= deployment.state_generation
    recorded = await repository.record_event(
        session,
        {
            "workspace": deployment.workspace,
            "deployment_id": deployment.id,
            "model_id": deployment.model_id,
            "device_id": deployment.device_id,
            "version_id": report.version_id,
            "source": "agent",
            "action": None,
            "state": report.state.value,
            "message": report.message[:10_000],
            "log_tail": report.log_tail[-200:],
            "generation": report.generation,
            "sequence": report.sequence,
            "actor": None,
            "applied": moves_state,
            "occurred_at": report.reported_at,
            "recorded_at": utcnow(),
        },
    )
    if not recorded or not applies:
        return
    deployment.last_sequence = report.sequence
    if not moves_state:
        return
    device = await devices.get_by_id(session, deployment.device_id)
    assert device is not None
    previous_state = deployment.state
    deployment.state = report.state.value
    deployment.state_message = report.message[:10_000]
    if report.state is DeploymentState.running:
        deployment.running_version_id = report.version_id or deployment.version_id
        deployment.host_port = report.host_port or deployment.host_port
    elif report.state in (DeploymentState.removed, DeploymentState.stopped):
        deployment.running_version_id = None
    deployment.revision += 1
    if previous_state != deployment.state:
        await messages.announce_state(
            session, deployment=deployment, previous_state=previous_state, message=report.message
        )
    await _follow_endpoint(session, deployment, device, report)


async def _follow_endpoint(
    session: AsyncSession, deployment: Deployment, device: Device, report: DeploymentReport
) -> None:
    """Announce an OpenAI-compatible endpoint when it starts running, withdraw it when not."""
    wanted_url: str | None = None
    if report.state is DeploymentState.running and deployment.running_version_id is not None:
        version = await versions.get_any(session, deployment.running_version_id)
        is_openai = version is not None and version.manifest.get("protocol") == Protocol.openai
        if is_openai:
            if report.base_url:
                wanted_url = report.base_url
            elif deployment.host_port and device.advertise_host:
                wanted_url = f"http://{device.advertise_host}:{deployment.host_port}"
            else:
                log.warning("deployment %s runs without a known address", deployment.id)
    announced = (deployment.base_url, deployment.endpoint_version_id)
    wanted = (wanted_url, deployment.running_version_id if wanted_url else None)
    if announced == wanted:
        return
    if deployment.base_url is not None:
        await messages.announce_endpoint(
            session,
            ready=False,
            deployment=deployment,
            device=device,
            version_id=deployment.endpoint_version_id or deployment.version_id,
            base_url=deployment.base_url,
        )
    if wanted_url is not None:
        await messages.announce_endpoint(
            session,
            ready=True,
            deployment=deployment,
            device=device,
            version_id=deployment.running_version_id,
            base_url=wanted_url,
        )
    deployment.base_url, deployment.endpoint_version_id = wanted
