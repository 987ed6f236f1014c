"""Who sent an agent's message, and which epoch of its data dir it speaks from.

A report or heartbeat counts only when the broker-validated sender (the AMQP `user_id`, checked
by RabbitMQ against the connection's login) is the device it is about, and that device is not
revoked; anything else is dropped, counted and, when it names a real deployment, written to that
deployment's history with the reason (`reports`).

Every report and heartbeat carries the agent's epoch, which changes when its data dir is new.
A new epoch means the device forgot everything: its sequences restart (the deployer offsets
them), and the deployer re-sends the desired state of each of its deployments. Late messages of
an epoch the device left are dropped.
"""

from __future__ import annotations

import logging
import uuid
from typing import TypeVar

from prometheus_client import Counter
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.device_identity import device_of_sender
from modelyard_common.events import CloudEvent
from modelyard_deployer.db import Device
from modelyard_deployer.deployments import fleet_repository as fleet
from modelyard_deployer.deployments.resync import expected_on_device, resend_desired_state
from modelyard_deployer.settings import DeployerSettings

log = logging.getLogger("modelyard.deployer.reports")

REJECTED = Counter(
    "modelyard_deployer_device_messages_rejected_total",
    "Device reports and heartbeats dropped, by kind and reason.",
    ["kind", "reason"],
)
RETIRED_EPOCHS_KEPT = 20

M = TypeVar("M", bound=BaseModel)


def reject(kind: str, reason: str, event: CloudEvent, detail: str) -> None:
    REJECTED.labels(kind=kind, reason=reason).inc()
    log.warning("dropping %s %s (%s): %s", kind, event.id, reason, detail)


def readable(model: type[M], event: CloudEvent, kind: str, detail: str) -> M | None:
    """Return the message's data as `model`; None once it is rejected as unreadable."""
    try:
        return model.model_validate(event.data)
    except ValidationError:
        reject(kind, "unreadable", event, detail)
        return None


async def sending_device(
    session: AsyncSession, event: CloudEvent, about: uuid.UUID, kind: str
) -> Device | None:
    """Return the device a message is about, if the broker says that device sent it."""
    sender = device_of_sender(event.sender)
    if sender != about:
        reject(kind, "wrong_sender", event, f"sent by {event.sender!r}, about device {about}")
        return None
    device = await fleet.get_by_id_for_update(session, about)
    if device is None or device.revoked_at is not None:
        reject(kind, "revoked_or_unknown", event, f"device {about} is revoked or unknown")
        return None
    return device


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
    deployments = await fleet.deployments_on(session, device.id)
    for deployment in deployments:
        deployment.sequence_offset = deployment.last_sequence
    if first_epoch:
        return True
    log.info("device %s has a new agent epoch %s: re-sending its desired state", device.id, epoch)
    await resend_desired_state(
        session,
        settings=settings,
        deployments=[d for d in deployments if expected_on_device(d)],
        message="the device came back with an empty data dir (new agent epoch); "
        "desired state re-sent",
    )
    return True
