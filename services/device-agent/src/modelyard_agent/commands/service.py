"""What a command does here: it becomes the deployment's desired state on disk, then is acted on."""

from __future__ import annotations

import logging
from uuid import UUID

from modelyard_agent.store import DesiredStateStore
from modelyard_agent.workloads.scheduler import Reconciler
from modelyard_common.contracts import DEVICE_COMMAND, DeviceCommand
from modelyard_common.events import CloudEvent

log = logging.getLogger("modelyard.agent")


class CommandService:
    """Accepts this device's commands into the desired-state store and wakes the reconciler."""

    def __init__(self, device_id: UUID, store: DesiredStateStore, reconciler: Reconciler) -> None:
        self.device_id = device_id
        self.store = store
        self.reconciler = reconciler

    async def handle_command(self, event: CloudEvent) -> None:
        """Persist a newer command for this device, then trigger reconciliation.

        Returns (so the message is acked) only once the desired state is on disk. A command that
        does not parse raises, so the queue retries it and then parks it as a poison message.
        """
        if event.type != DEVICE_COMMAND:
            log.warning("ignoring event %s of type %s on the command queue", event.id, event.type)
            return
        command = DeviceCommand.model_validate(event.data)
        if command.device_id != self.device_id:
            log.warning("ignoring command %s meant for device %s", event.id, command.device_id)
            return
        record = await self.store.accept(command)
        if record is None:
            log.info("ignoring stale command %s (generation %s)", event.id, command.generation)
            return
        log.info(
            "command %s: deployment %s generation %s -> %s",
            command.action.value,
            command.deployment_id,
            command.generation,
            command.desired_state.value,
        )
        self.reconciler.command_accepted(command.deployment_id)
