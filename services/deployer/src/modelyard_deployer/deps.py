"""Request dependencies on the deployer's process-wide resources, built in the app's lifespan.

Settings, artifact store, the registry (its one client and the confirmation of standings),
broker, devices' broker logins; and `creates`, the service's idempotent creates. Foundation:
nothing here imports a feature package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelyard_common.governance import RegistryConfirmation
from modelyard_common.http import IdempotentCreates
from modelyard_common.messaging import Broker
from modelyard_deployer.artifacts import ArtifactStore
from modelyard_deployer.db import IdempotencyRecord
from modelyard_deployer.device_broker import BrokerLogins
from modelyard_deployer.settings import DeployerSettings

creates = IdempotentCreates(IdempotencyRecord)


def app_state(name: str) -> Callable[[Request], Any]:
    """Return a dependency reading `app.state.<name>` (set by the app's lifespan)."""

    def read(request: Request) -> Any:
        return getattr(request.app.state, name)

    read.__name__ = f"get_{name}"
    return read


def get_registry_http(request: Request) -> httpx.AsyncClient:
    """Return the one HTTP client the deployer uses to ask the registry."""
    registry: RegistryConfirmation = request.app.state.registry
    return registry.http


SettingsDep = Annotated[DeployerSettings, Depends(app_state("settings"))]
StoreDep = Annotated[ArtifactStore, Depends(app_state("artifact_store"))]
# The projection of approvals, confirmed with the registry when it is silent or refuses.
RegistryDep = Annotated[RegistryConfirmation, Depends(app_state("registry"))]
RegistryHttpDep = Annotated[httpx.AsyncClient, Depends(get_registry_http)]
BrokerDep = Annotated[Broker, Depends(app_state("broker"))]
# The session factory, for work outside the request's transaction.
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(app_state("sessionmaker"))]
BrokerLoginsDep = Annotated[BrokerLogins, Depends(app_state("broker_logins"))]
