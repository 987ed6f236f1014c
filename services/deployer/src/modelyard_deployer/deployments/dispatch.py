"""The dispatcher: applies one action to deployments and queues the resulting commands.

Every action bumps the deployment's `generation` and queues the deployment's whole desired
state for its device through the outbox (in the same transaction as the change), so the device
gets it even if it is offline now, and an older command can never undo a newer one.
`CommandQueue`, the dispatcher's base, is that queueing alone: `resync` sends a command again
at the same generation through it.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.contracts import CommandAction, DeploymentState
from modelyard_common.errors import ServiceUnavailableError
from modelyard_common.messaging import Broker
from modelyard_deployer.db import Deployment, ModelVersion
from modelyard_deployer.deployments import messages, repository
from modelyard_deployer.device_broker import ensure_device_queue
from modelyard_deployer.governance import repository as registry_models
from modelyard_deployer.settings import DeployerSettings
from modelyard_deployer.versions import repository as versions

log = logging.getLogger("modelyard.deployer.deployments")


class CommandQueue:
    """Queues deployments' commands for their devices and notes each in their history.

    A batch sends one version (and model) to many devices: each is read once.
    """

    def __init__(
        self, session: AsyncSession, *, settings: DeployerSettings, actor: str | None = None
    ) -> None:
        self.session = session
        self.settings = settings
        self.actor = actor
        self._versions: dict[uuid.UUID, ModelVersion | None] = {}
        self._model_names: dict[uuid.UUID, str] = {}

    async def _version(self, version_id: uuid.UUID | None) -> ModelVersion | None:
        if version_id is None:
            return None
        if version_id not in self._versions:
            self._versions[version_id] = await versions.get_any(self.session, version_id)
        return self._versions[version_id]

    async def _model_name(self, model_id: uuid.UUID) -> str:
        if model_id not in self._model_names:
            model = await registry_models.get(self.session, model_id)
            self._model_names[model_id] = model.name if model else str(model_id)
        return self._model_names[model_id]

    async def queue(self, deployment: Deployment, *, action: CommandAction, message: str) -> bool:
        """Queue the deployment's desired state with `action`; False if its version is gone."""
        version = await self._version(deployment.version_id)
        if version is None:
            return False
        previous = await self._version(deployment.previous_version_id)
        if previous is not None and previous.deleted_at is not None:
            previous = None
        await messages.send_command(
            self.session,
            deployment=deployment,
            action=action,
            version=version,
            previous=previous,
            model_name=await self._model_name(deployment.model_id),
            base_url=self.settings.artifact_base_url,
        )
        self.session.add(
            repository.deployer_entry(deployment, action=action, message=message, actor=self.actor)
        )
        return True


class Dispatcher(CommandQueue):
    """Applies one action to deployments and queues the resulting commands."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        broker: Broker,
        settings: DeployerSettings,
        principal: Principal,
    ) -> None:
        super().__init__(session, settings=settings, actor=principal.sub)
        self.broker = broker
        self.principal = principal
        self._declared: set[uuid.UUID] = set()

    async def _declare_queue(self, device_id: uuid.UUID) -> None:
        """Make sure the device's command queue exists, when the broker can be asked now.

        The command itself goes through the outbox, so a broker outage never refuses it: the
        queue was declared when the device registered, and the relay delivers once the broker
        is back (retrying with backoff should the queue be missing).
        """
        if not self.broker.is_connected:
            log.info("broker unreachable: command for device %s waits in the outbox", device_id)
            return
        try:
            await ensure_device_queue(self.broker, self.settings, device_id)
        except ServiceUnavailableError as exc:
            log.warning("command for device %s waits in the outbox: %s", device_id, exc)
            return
        self._declared.add(device_id)

    async def dispatch(
        self,
        deployment: Deployment,
        *,
        action: CommandAction,
        message: str,
        set_state: DeploymentState | None = None,
        first: bool = False,
    ) -> None:
        """Bump the generation, record the action, and queue the command for the device."""
        if not first:
            deployment.generation += 1
            deployment.revision += 1
        if set_state is not None and deployment.state != set_state:
            previous_state = deployment.state
            deployment.state = set_state.value
            deployment.state_message = message
            deployment.state_generation = deployment.generation
            await messages.announce_state(
                self.session, deployment=deployment, previous_state=previous_state, message=message
            )
        elif set_state is not None:
            deployment.state_generation = deployment.generation
        if deployment.device_id not in self._declared:
            await self._declare_queue(deployment.device_id)
        queued = await self.queue(deployment, action=action, message=message)
        assert queued, "the version of a dispatched deployment exists"
        await self.session.flush()
