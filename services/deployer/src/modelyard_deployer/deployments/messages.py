"""What the deployer sends: device commands and deployment events, all through the outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.contracts import (
    DEPLOYMENT_STATE_CHANGED,
    DEVICE_COMMAND,
    DEVICES_EXCHANGE,
    ENDPOINT_GONE,
    ENDPOINT_READY,
    EVENTS_EXCHANGE,
    CommandAction,
    DesiredState,
    DeviceCommand,
    EndpointAnnouncement,
    VersionSpec,
    device_routing_key,
)
from modelyard_common.db import utcnow
from modelyard_common.events import new_event
from modelyard_common.manifest import Manifest
from modelyard_common.outbox import enqueue
from modelyard_deployer.db import Deployment, Device, ModelVersion, OutboxEvent
from modelyard_deployer.versions.service import artifact_path

SOURCE = "modelyard-deployer"


def version_spec(version: ModelVersion, *, model_name: str, base_url: str) -> VersionSpec:
    """Return what an agent needs to fetch and run a version."""
    return VersionSpec(
        id=version.id,
        model_id=version.model_id,
        model_name=model_name,
        number=version.number,
        sha256=version.sha256,
        size_bytes=version.size_bytes,
        artifact_url=f"{base_url}{artifact_path(version.id)}",
        manifest=Manifest.model_validate(version.manifest),
    )


async def send_command(
    session: AsyncSession,
    *,
    deployment: Deployment,
    action: CommandAction,
    version: ModelVersion,
    previous: ModelVersion | None,
    model_name: str,
    base_url: str,
) -> DeviceCommand:
    """Queue the deployment's full desired state for its device; return the command."""
    command = DeviceCommand(
        deployment_id=deployment.id,
        device_id=deployment.device_id,
        generation=deployment.generation,
        action=action,
        desired_state=DesiredState(deployment.desired_state),
        version=version_spec(version, model_name=model_name, base_url=base_url),
        previous_version=(
            version_spec(previous, model_name=model_name, base_url=base_url) if previous else None
        ),
    )
    event = new_event(
        type=DEVICE_COMMAND,
        source=SOURCE,
        subject=str(deployment.id),
        data=command.model_dump(mode="json"),
    )
    await enqueue(
        session,
        OutboxEvent,
        event,
        exchange=DEVICES_EXCHANGE,
        routing_key=device_routing_key(deployment.device_id),
    )
    return command


async def announce_state(
    session: AsyncSession, *, deployment: Deployment, previous_state: str, message: str
) -> None:
    """Queue `deployer.deployment.state_changed` for a deployment."""
    data: dict[str, Any] = {
        "deployment_id": str(deployment.id),
        "workspace": deployment.workspace,
        "model_id": str(deployment.model_id),
        "version_id": str(deployment.version_id),
        "running_version_id": (
            str(deployment.running_version_id) if deployment.running_version_id else None
        ),
        "device_id": str(deployment.device_id),
        "state": deployment.state,
        "previous_state": previous_state,
        "desired_state": deployment.desired_state,
        "message": message,
        "generation": deployment.generation,
        "occurred_at": utcnow().isoformat(),
    }
    await _announce(session, deployment, DEPLOYMENT_STATE_CHANGED, data)


async def announce_endpoint(
    session: AsyncSession,
    *,
    ready: bool,
    deployment: Deployment,
    device: Device,
    base_url: str,
    ingress_token_sealed: str | None,
) -> None:
    """Queue `endpoint_ready` (or `endpoint_gone`) for an OpenAI-compatible deployment.

    A ready endpoint serves the version the device runs; a gone one, the version it was
    announced with. Each announcement takes the deployment's next endpoint sequence.
    """
    deployment.endpoint_sequence += 1
    announcement = EndpointAnnouncement(
        deployment_id=deployment.id,
        model_id=deployment.model_id,
        version_id=(
            deployment.running_version_id
            if ready
            else deployment.endpoint_version_id or deployment.version_id
        ),
        device_id=deployment.device_id,
        base_url=base_url,
        device_labels=device.labels,
        workspace=deployment.workspace,
        sequence=deployment.endpoint_sequence,
        ingress_token_sealed=ingress_token_sealed,
    )
    event_type = ENDPOINT_READY if ready else ENDPOINT_GONE
    await _announce(session, deployment, event_type, announcement.model_dump(mode="json"))


async def _announce(
    session: AsyncSession, deployment: Deployment, event_type: str, data: dict[str, Any]
) -> None:
    """Queue a domain event about the deployment on the events exchange (through the outbox)."""
    await enqueue(
        session,
        OutboxEvent,
        new_event(type=event_type, source=SOURCE, subject=str(deployment.id), data=data),
        exchange=EVENTS_EXCHANGE,
    )
