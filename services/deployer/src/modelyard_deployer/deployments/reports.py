"""Agent reports and heartbeats: what they change once their sender is proven (`senders`).

Reports of one deployment are applied one at a time (row lock). A report whose sequence is not
higher than the last applied one is late: it is kept in the history (`applied: false`), since it
did happen on the device, but it does not move the state back. A report about an older command
generation than the one that last reset the state (a redeploy, rollback or cancel) is history
only, for the same reason.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.contracts import DeploymentReport, DeploymentState, DeviceHeartbeat
from modelyard_common.db import utcnow
from modelyard_common.device_identity import device_of_sender
from modelyard_common.events import CloudEvent
from modelyard_deployer.db import Deployment
from modelyard_deployer.deployments import fleet_repository as fleet
from modelyard_deployer.deployments import messages, repository
from modelyard_deployer.deployments.bounds import (
    HeartbeatBounds,
    ReportBounds,
    bounded_capabilities,
    bounded_health,
    check_bounds,
    log_lines,
)
from modelyard_deployer.deployments.endpoints import follow_endpoint
from modelyard_deployer.deployments.resync import reconcile_listing
from modelyard_deployer.deployments.senders import follow_epoch, readable, reject, sending_device
from modelyard_deployer.settings import DeployerSettings

log = logging.getLogger("modelyard.deployer.reports")


async def apply_report(
    session: AsyncSession, event: CloudEvent, *, settings: DeployerSettings
) -> None:
    """Record one `agent.deployment.reported` event and move the deployment's state."""
    report = readable(DeploymentReport, event, "report", "not a deployment report")
    if report is None:
        return
    out_of_bounds = check_bounds(ReportBounds, event.data)
    if out_of_bounds is not None:
        reject("report", "out_of_bounds", event, out_of_bounds)
        return
    device = await sending_device(session, event, report.device_id, "report")
    if device is None:
        await _record_refusal(session, event, report)
        return
    if not await follow_epoch(session, settings=settings, device=device, epoch=report.agent_epoch):
        reject("report", "stale_epoch", event, f"epoch {report.agent_epoch} is older")
        return
    deployment = await repository.get_for_report(session, report.deployment_id)
    if deployment is None or deployment.device_id != report.device_id:
        reject("report", "not_its_deployment", event, f"deployment {report.deployment_id}")
        return
    sequence = deployment.sequence_offset + report.sequence
    applies = sequence > deployment.last_sequence
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
            "log_tail": log_lines(report.log_tail),
            "generation": report.generation,
            "sequence": sequence,
            "actor": None,
            "applied": moves_state,
            "occurred_at": report.reported_at,
            "recorded_at": utcnow(),
        },
    )
    if not recorded or not applies:
        return
    deployment.last_sequence = sequence
    if not moves_state:
        return
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
    await follow_endpoint(session, settings=settings, deployment=deployment, device=device)


async def _record_refusal(
    session: AsyncSession, event: CloudEvent, report: DeploymentReport
) -> None:
    """Write a refused report into the history of the deployment it names, with the reason.

    Only a device of that deployment's own workspace leaves such a note: a message from another
    workspace's device, from a login that is no device, or without a broker-checked sender is
    dropped and counted, and writes nothing into a workspace it does not belong to.
    """
    deployment = await session.get(Deployment, report.deployment_id)
    if deployment is None:
        return
    sender_id = device_of_sender(event.sender)
    sender = await fleet.get_by_id(session, sender_id) if sender_id else None
    if sender is None or sender.workspace != deployment.workspace:
        log.warning(
            "report %s about deployment %s not noted in its history: the sender is not a device "
            "of its workspace",
            event.id,
            deployment.id,
        )
        return
    session.add(
        repository.deployer_entry(
            deployment,
            message=(
                f"refused a {report.state.value!r} report sent by "
                f"{_sender_name(event.sender)}: only device {deployment.device_id} reports on "
                "this deployment, and only while it is not revoked"
            ),
            actor=event.sender,
            version_id=report.version_id,
            generation=report.generation,
            applied=False,
        )
    )


def _sender_name(sender: str | None) -> str:
    return f"broker login {sender!r}" if sender else "an unverified sender (no user_id)"


async def apply_heartbeat(
    session: AsyncSession,
    event: CloudEvent,
    *,
    settings: DeployerSettings,
) -> None:
    """Record a heartbeat and its deployments' health, then reconcile its list.

    Recorded: last seen, agent version, capabilities, the heartbeat interval it declares (within
    `HEARTBEAT_INTERVAL_MAX_S`), and the health of each deployment it lists that is the device's
    own (`bounds.bounded_health` leaves out what is unfit).

    A heartbeat outside the bounds of `deployments.bounds` is dropped whole. Its `advertise_host`
    (and anything else it says about the device's address or labels) is never applied: a
    device's address changes through its registration or an admin, its labels through editors.
    """
    heartbeat = readable(DeviceHeartbeat, event, "heartbeat", "not a heartbeat")
    if heartbeat is None:
        return
    out_of_bounds = check_bounds(HeartbeatBounds, event.data)
    try:
        capabilities = bounded_capabilities(
            event.data.get("capabilities"), max_bytes=settings.max_capabilities_bytes
        )
    except ValueError as exc:
        out_of_bounds = out_of_bounds or str(exc)
    if out_of_bounds is not None:
        reject("heartbeat", "out_of_bounds", event, out_of_bounds)
        return
    device = await sending_device(session, event, heartbeat.device_id, "heartbeat")
    if device is None:
        return
    if not await follow_epoch(
        session, settings=settings, device=device, epoch=heartbeat.agent_epoch
    ):
        reject("heartbeat", "stale_epoch", event, f"epoch {heartbeat.agent_epoch} is older")
        return
    interval_s = settings.declared_interval(heartbeat.interval_s)
    offline_after = settings.offline_after(interval_s)
    now = utcnow()
    # A fresh heartbeat counts as seen now, whatever the device's clock says (edge clocks
    # drift); one older than the offline window (a backlog after downtime) keeps its own time,
    # so a device that died meanwhile is not shown online.
    seen_at = now if heartbeat.sent_at > now - offline_after else heartbeat.sent_at
    applied = await fleet.record_heartbeat(
        session,
        device_id=heartbeat.device_id,
        seen_at=seen_at,
        agent_version=heartbeat.agent_version,
        capabilities=capabilities,
        interval_s=interval_s,
    )
    if not applied:
        return
    await fleet.record_health(
        session,
        device_id=heartbeat.device_id,
        reported_at=seen_at,
        health=bounded_health(heartbeat.deployments),
    )
    if seen_at == now:
        await reconcile_listing(session, settings=settings, device=device, heartbeat=heartbeat)
