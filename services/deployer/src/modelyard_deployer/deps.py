"""Request dependencies on the deployer's process-wide resources, built in the app's lifespan.

Settings, artifact store, the registry (its one client and the confirmation of standings),
broker, devices' broker logins; and `creates`, the service's idempotent creates. Foundation:
nothing here imports a feature package.
"""

from __future__ import annotations

from typing import Annotated

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


def get_settings(request: Request) -> DeployerSettings:
    """Return the app's settings."""
    settings: DeployerSettings = request.app.state.settings
    return settings


def get_store(request: Request) -> ArtifactStore:
    """Return the app's artifact store."""
    store: ArtifactStore = request.app.state.artifact_store
    return store


def get_registry(request: Request) -> RegistryConfirmation:
    """Return the deployer's projection of approvals, confirmed with the registry when needed."""
    registry: RegistryConfirmation = request.app.state.registry
    return registry


def get_registry_http(request: Request) -> httpx.AsyncClient:
    """Return the one HTTP client the deployer uses to ask the registry."""
    return get_registry(request).http


def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """Return the app's session factory (for work outside the request's transaction)."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return factory


def get_broker(request: Request) -> Broker:
    """Return the app's broker."""
    broker: Broker = request.app.state.broker
    return broker


def get_broker_logins(request: Request) -> BrokerLogins:
    """Return the manager of devices' broker logins."""
    logins: BrokerLogins = request.app.state.broker_logins
    return logins


SettingsDep = Annotated[DeployerSettings, Depends(get_settings)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
RegistryDep = Annotated[RegistryConfirmation, Depends(get_registry)]
RegistryHttpDep = Annotated[httpx.AsyncClient, Depends(get_registry_http)]
BrokerDep = Annotated[Broker, Depends(get_broker)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
BrokerLoginsDep = Annotated[BrokerLogins, Depends(get_broker_logins)]
