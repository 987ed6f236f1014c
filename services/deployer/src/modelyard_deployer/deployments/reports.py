"""Agent reports and heartbeats: who sent them, what they change, and recovery after data loss.

A report or heartbeat counts only when the broker-validated sender (the AMQP `user_id`, checked
by RabbitMQ against the connection's login) is the device it is about, and that device is not
revoked; anything else is dropped, counted and, when it names a real deployment, written to that
deployment's history with the reason.

Reports of one deployment are applied one at a time (row lock). A report whose sequence is not
higher than the last applied one is late: it is kept in the history (`applied: false`), since it
did happen on the device, but it does not move the state back. A report about an older command
generation than the one that last reset the state (a redeploy, rollback or cancel) is history
only, for the same reason.

Every report and heartbeat carries the agent's epoch, which changes when its data dir is new.
A new epoch means the device forgot everything: its sequences restart (the deployer offsets
them), and the deployer re-sends the desired state of each of its deployments. Late messages of
an epoch the device left are dropped.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from cryptography.fernet import Fernet
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.contracts import (
    CommandAction,
    DeploymentReport,
    DeploymentState,
    DesiredState,
    DeviceHeartbeat,
)
from modelyard_common.db import utcnow
from modelyard_common.device_identity import device_of_sender, ingress_token
from modelyard_common.events import CloudEvent
from modelyard_common.manifest import Protocol
from modelyard_deployer.db import Deployment, Device
from modelyard_deployer.deployments import messages, repository
from modelyard_deployer.devices import repository as devices
from modelyard_deployer.devices.messages import (
    HeartbeatBounds,
    ReportBounds,
    bounded_capabilities,
    check_bounds,
    log_lines,
)
from modelyard_deployer.registry_models import repository as registry_models
from modelyard_deployer.settings import DeployerSettings
from modelyard_deployer.versions import repository as versions

log = logging.getLogger("modelyard.deployer.reports")

REJECTED = Counter(
    "modelyard_deployer_device_messages_rejected_total",
    "Device reports and heartbeats dropped, by kind and reason.",
    ["kind", "reason"],
)
RETIRED_EPOCHS_KEPT = 20
# A deployment the heartbeat leaves out is re-sent only once its last command had time to land.
RESEND_GRACE = timedelta(seconds=15)
ACTION_FOR_DESIRED = {
    DesiredState.running.value: CommandAction.deploy,
    DesiredState.stopped.value: CommandAction.stop,
    DesiredState.removed.value: CommandAction.remove,
}


def _reject(kind: str, reason: str, event: CloudEvent, detail: str) -> None:
    REJECTED.labels(kind=kind, reason=reason).inc()
    log.warning("dropping %s %s (%s): %s", kind, event.id, reason, detail)


async def _sending_device(
    session: AsyncSession, event: CloudEvent, about: uuid.UUID, kind: str
) -> Device | None:
    """Return the device a message is about, if the broker says that device sent it."""
    sender = device_of_sender(event.sender)
    if sender != about:
        _reject(kind, "wrong_sender", event, f"sent by {event.sender!r}, about device {about}")
        return None
    device = await devices.get_by_id_for_update(session, about)
    if device is None or device.revoked_at is not None:
        _reject(kind, "revoked_or_unknown", event, f"device {about} is revoked or unknown")
        return None
    return device


async def apply_report(
    session: AsyncSession, event: CloudEvent, *, settings: DeployerSettings
) -> None:
    """Record one `agent.deployment.reported` event and move the deployment's state."""
    try:
        report = DeploymentReport.model_validate(event.data)
    except ValidationError:
        _reject("report", "unreadable", event, "not a deployment report")
        return
    out_of_bounds = check_bounds(ReportBounds, event.data)
    if out_of_bounds is not None:
        _reject("report", "out_of_bounds", event, out_of_bounds)
        return
    device = await _sending_device(session, event, report.device_id, "report")
    if device is None:
        await _record_refusal(session, event, report)
        return
    if not await follow_epoch(session, settings=settings, device=device, epoch=report.agent_epoch):
        _reject("report", "stale_epoch", event, f"epoch {report.agent_epoch} is older")
        return
    deployment = await repository.get_for_report(session, report.deployment_id)
    if deployment is None or deployment.device_id != report.device_id:
        _reject("report", "not_its_deployment", event, f"deployment {report.deployment_id}")
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
    sender = await devices.get_by_id(session, sender_id) if sender_id else None
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
    offline_after: timedelta,
) -> None:
    """Record a heartbeat (last seen, agent version, capabilities), then reconcile its list.

    A heartbeat outside the bounds of `devices.messages` is dropped whole. Its `advertise_host`
    (and anything else it says about the device's address or labels) is never applied: a
    device's address changes through its registration or an admin, its labels through editors.
    """
    try:
        heartbeat = DeviceHeartbeat.model_validate(event.data)
    except ValidationError:
        _reject("heartbeat", "unreadable", event, "not a heartbeat")
        return
    out_of_bounds = check_bounds(HeartbeatBounds, event.data)
    try:
        capabilities = bounded_capabilities(
            event.data.get("capabilities"), max_bytes=settings.max_capabilities_bytes
        )
    except ValueError as exc:
        out_of_bounds = out_of_bounds or str(exc)
    if out_of_bounds is not None:
        _reject("heartbeat", "out_of_bounds", event, out_of_bounds)
        return
    device = await _sending_device(session, event, heartbeat.device_id, "heartbeat")
    if device is None:
        return
    if not await follow_epoch(
        session, settings=settings, device=device, epoch=heartbeat.agent_epoch
    ):
        _reject("heartbeat", "stale_epoch", event, f"epoch {heartbeat.agent_epoch} is older")
        return
    now = utcnow()
    # A fresh heartbeat counts as seen now, whatever the device's clock says (edge clocks
    # drift); one older than the offline window (a backlog after downtime) keeps its own time,
    # so a device that died meanwhile is not shown online.
    seen_at = now if heartbeat.sent_at > now - offline_after else heartbeat.sent_at
    applied = await devices.record_heartbeat(
        session,
        device_id=heartbeat.device_id,
        seen_at=seen_at,
        agent_version=heartbeat.agent_version,
        capabilities=capabilities,
    )
    if applied and seen_at == now:
        await _reconcile_listing(session, settings=settings, device=device, heartbeat=heartbeat)


async def _reconcile_listing(
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
        for deployment in await _device_deployments(session, device.id)
        if deployment.updated_at < settled
        and _expected_on_device(deployment)
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


def _expected_on_device(deployment: Deployment) -> bool:
    """Return whether the device should still hold this deployment."""
    return not (
        deployment.desired_state == DesiredState.removed.value
        and deployment.state == DeploymentState.removed.value
    )


async def _device_deployments(session: AsyncSession, device_id: uuid.UUID) -> list[Deployment]:
    rows = await session.scalars(
        select(Deployment)
        .where(Deployment.device_id == device_id)
        .order_by(Deployment.id)
        .with_for_update()
    )
    return list(rows)


async def follow_epoch(
    session: AsyncSession, *, settings: DeployerSettings, device: Device, epoch: str | None
) -> bool:
    """Take note of the agent's epoch; return False for a message of an earlier epoch.

    Any epoch the device has not had before is its new one (no clock is trusted: a re-imaged
    device may well boot in 1970); the ones it left are remembered, and late messages of those
    are dropped. On a new epoch the device's sequences restart and its desired state is re-sent.
    """
    if epoch is None or epoch == device.agent_epoch:
        return True
    retired = list(device.retired_agent_epochs or [])
    if epoch in retired:
        return False
    first_epoch = device.agent_epoch is None
    if device.agent_epoch is not None:
        device.retired_agent_epochs = [*retired, device.agent_epoch][-RETIRED_EPOCHS_KEPT:]
    device.agent_epoch = epoch
    deployments = await _device_deployments(session, device.id)
    for deployment in deployments:
        deployment.sequence_offset = deployment.last_sequence
    if first_epoch:
        return True
    log.info("device %s has a new agent epoch %s: re-sending its desired state", device.id, epoch)
    await resend_desired_state(
        session,
        settings=settings,
        deployments=[d for d in deployments if _expected_on_device(d)],
        message="the device came back with an empty data dir (new agent epoch); "
        "desired state re-sent",
    )
    return True


async def resend_desired_state(
    session: AsyncSession,
    *,
    settings: DeployerSettings,
    deployments: list[Deployment],
    message: str,
) -> None:
    """Queue each deployment's current command again (same generation) and note it in history."""
    for deployment in deployments:
        version = await versions.get_any(session, deployment.version_id)
        if version is None:
            continue
        previous = (
            await versions.get_any(session, deployment.previous_version_id)
            if deployment.previous_version_id
            else None
        )
        if previous is not None and previous.deleted_at is not None:
            previous = None
        model = await registry_models.get(session, deployment.model_id)
        action = ACTION_FOR_DESIRED.get(deployment.desired_state, CommandAction.deploy)
        await messages.send_command(
            session,
            deployment=deployment,
            action=action,
            version=version,
            previous=previous,
            model_name=model.name if model else str(deployment.model_id),
            base_url=settings.artifact_base_url,
        )
        session.add(repository.deployer_entry(deployment, action=action, message=message))
    await session.flush()


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
        deployment.endpoint_sequence += 1
        await messages.announce_endpoint(
            session,
            ready=False,
            deployment=deployment,
            device=device,
            version_id=deployment.endpoint_version_id or deployment.version_id,
            base_url=deployment.base_url,
            sequence=deployment.endpoint_sequence,
            ingress_token_sealed=None,
        )
    if wanted_url is not None:
        deployment.endpoint_sequence += 1
        await messages.announce_endpoint(
            session,
            ready=True,
            deployment=deployment,
            device=device,
            version_id=deployment.running_version_id,
            base_url=wanted_url,
            sequence=deployment.endpoint_sequence,
            ingress_token_sealed=sealed_ingress_token(device, settings),
        )
    deployment.base_url, deployment.endpoint_version_id = wanted


async def reannounce_device(
    session: AsyncSession, *, settings: DeployerSettings, device: Device
) -> None:
    """Announce a device's endpoints again (its token or address changed)."""
    for deployment in await _device_deployments(session, device.id):
        await follow_endpoint(
            session, settings=settings, deployment=deployment, device=device, force=True
        )


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
        device = await devices.get_by_id(session, deployment.device_id)
        if device is None:
            continue
        await follow_endpoint(
            session, settings=settings, deployment=deployment, device=device, force=True
        )
        count += deployment.base_url is not None
    return count


async def retire_device(
    session: AsyncSession, *, settings: DeployerSettings, device: Device
) -> None:
    """Mark a revoked device's deployments removed in history and withdraw their endpoints."""
    for deployment in await _device_deployments(session, device.id):
        if not _expected_on_device(deployment):
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
