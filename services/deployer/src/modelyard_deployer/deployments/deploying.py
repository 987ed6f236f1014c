"""What deploying and acting on deployments take from one request, gathered once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.governance import RegistryConfirmation, Verdict
from modelyard_common.messaging import Broker
from modelyard_deployer.db import Device, RegistryModel
from modelyard_deployer.deployments.dispatch import Dispatcher
from modelyard_deployer.governance.models import get_visible_model, require_open
from modelyard_deployer.governance.service import judge_targets
from modelyard_deployer.settings import DeployerSettings


@dataclass(frozen=True, slots=True)
class Deploying:
    """A caller deploying or acting on deployments, with the request's session and services.

    The policy gate's verdicts are confirmed with the registry under the caller's own token
    (`authorization`); commands leave through the outbox, the broker only declares queues.
    """

    session: AsyncSession
    principal: Principal
    registry: RegistryConfirmation
    broker: Broker
    settings: DeployerSettings
    authorization: str | None

    def dispatcher(self) -> Dispatcher:
        """Return a dispatcher of this caller's actions."""
        return Dispatcher(
            self.session, broker=self.broker, settings=self.settings, principal=self.principal
        )

    async def open_model(self, model_id: uuid.UUID) -> RegistryModel:
        """Return the model if it may get new deployments (it exists and is not archived)."""
        model = await get_visible_model(
            self.session,
            http=self.registry.http,
            principal=self.principal,
            model_id=model_id,
            authorization=self.authorization,
        )
        return require_open(model)

    async def judge(
        self, model: RegistryModel, targets: Sequence[Device]
    ) -> dict[uuid.UUID, Verdict]:
        """Return the policy gate's verdict per target device (409 if it refuses any)."""
        return await judge_targets(
            self.session,
            registry=self.registry,
            model=model,
            targets=targets,
            authorization=self.authorization,
        )
