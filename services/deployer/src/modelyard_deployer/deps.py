"""Dependencies on the app's process-wide resources: settings, artifact store, registry client."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelyard_common.messaging import Broker
from modelyard_deployer.artifacts import ArtifactStore
from modelyard_deployer.devices.broker_logins import BrokerLogins
from modelyard_deployer.settings import DeployerSettings


def get_settings(request: Request) -> DeployerSettings:
    """Return the app's settings."""
    settings: DeployerSettings = request.app.state.settings
    return settings


def get_store(request: Request) -> ArtifactStore:
    """Return the app's artifact store."""
    store: ArtifactStore = request.app.state.artifact_store
    return store


def get_registry_http(request: Request) -> httpx.AsyncClient:
    """Return the HTTP client the deployer uses to ask the registry."""
    client: httpx.AsyncClient = request.app.state.registry_http
    return client


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
RegistryHttpDep = Annotated[httpx.AsyncClient, Depends(get_registry_http)]
BrokerDep = Annotated[Broker, Depends(get_broker)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
BrokerLoginsDep = Annotated[BrokerLogins, Depends(get_broker_logins)]
