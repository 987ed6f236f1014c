"""The deployer's FastAPI app: routes, consumers, outbox relay, artifact store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
from fastapi import FastAPI

from modelyard_common.governance import RegistryConfirmation
from modelyard_common.infrastructure_upkeep import relay_and_purge
from modelyard_common.messaging import Broker, Consumer
from modelyard_common.web import ServiceRuntime
from modelyard_common.web import create_app as create_service_app
from modelyard_deployer import __version__
from modelyard_deployer.access.router import router as access_router
from modelyard_deployer.artifacts import build_store
from modelyard_deployer.db import infrastructure
from modelyard_deployer.deployments import router as deployments
from modelyard_deployer.deployments import scoped_router as scoped_deployments
from modelyard_deployer.deployments.consumer import start_consumers
from modelyard_deployer.device_broker import BrokerLogins
from modelyard_deployer.devices.router import router as devices_router
from modelyard_deployer.governance.service import projection
from modelyard_deployer.provisioning import router as provisioning
from modelyard_deployer.rollouts.engine import RolloutEngine
from modelyard_deployer.rollouts.router import router as rollouts_router
from modelyard_deployer.settings import DeployerSettings
from modelyard_deployer.versions import router as versions

TAGS = [
    {"name": "versions", "description": "Model versions: uploaded AI project zips + manifests."},
    {"name": "devices", "description": "Edge devices running the agent."},
    {"name": "provisioning", "description": "Tokens that onboard devices in one command."},
    {"name": "deployments", "description": "Versions desired on devices, and their history."},
    {"name": "rollouts", "description": "A version to many devices in waves, gated on health."},
    {"name": "access", "description": "Per-model grants: viewer, deployer, editor."},
    {"name": "operations", "description": "Health and metrics."},
]


async def build_runtime(
    app: FastAPI, settings: DeployerSettings, stack: contextlib.AsyncExitStack
) -> None:
    """Start the deployer's resources on `app.state`; `stack` stops them, in reverse order.

    Artifact store, devices' broker logins, the one client of the registry, then the database
    and broker runtime with its housekeeping, the outbox relay and (once the broker is
    reachable) the consumers.
    """
    store = build_store(settings)
    stack.push_async_callback(store.close)
    app.state.artifact_store = store
    logins = BrokerLogins(
        settings.broker_management_url,
        settings.broker_vhost,
        timeout_s=settings.broker_management_timeout_s,
    )
    stack.push_async_callback(logins.close)
    app.state.broker_logins = logins
    registry_http = httpx.AsyncClient(
        base_url=settings.registry_url, timeout=settings.registry_timeout_s
    )
    stack.push_async_callback(registry_http.aclose)
    app.state.registry = RegistryConfirmation(projection(settings), registry_http)

    runtime = ServiceRuntime(settings)
    relay = relay_and_purge(runtime, infrastructure)
    staging_age = timedelta(hours=settings.artifact_staging_max_age_h)
    runtime.housekeep("artifact staging", lambda: store.sweep(staging_age))
    consumers: list[Consumer] = []

    async def on_broker_ready(broker: Broker) -> None:
        relay.start()
        if settings.consume_events:
            consumers.extend(await start_consumers(broker, runtime.sessionmaker, settings))

    async def stop_consumers() -> None:
        for consumer in consumers:
            with contextlib.suppress(Exception):
                await consumer.stop()

    runtime.on_broker_ready(on_broker_ready)
    runtime.bind(app)
    app.state.relay = relay
    stack.push_async_callback(runtime.stop)
    await runtime.start()
    rollouts = RolloutEngine(
        runtime.sessionmaker, broker=runtime.broker, registry=app.state.registry, settings=settings
    )
    # Cancelled by `runtime.stop`; safe with any number of replicas (row locks, skip locked).
    runtime.background.append(asyncio.create_task(rollouts.run_forever(), name="rollouts"))
    stack.push_async_callback(relay.stop)
    stack.push_async_callback(stop_consumers)


def create_app(settings: DeployerSettings | None = None) -> FastAPI:
    """Return the deployer app; its lifespan connects the broker, consumers and relay."""
    settings = settings or DeployerSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await build_runtime(app, settings, stack)
            yield

    return create_service_app(
        title="Modelyard deployer",
        description="Model versions (zip + run manifest), devices, deployments and their "
        "history, and per-model access grants.",
        version=__version__,
        settings=settings,
        routers=[
            versions.model_router,
            versions.router,
            provisioning.router,
            provisioning.registration_router,
            devices_router,
            deployments.router,
            rollouts_router,
            scoped_deployments.device_router,
            scoped_deployments.model_router,
            access_router,
        ],
        lifespan=lifespan,
        openapi_tags=TAGS,
        # The upload is streamed to the store under its own limit (max_upload_bytes).
        raw_bodies={("POST", "/v1/models/{model_id}/versions"): None},
    )
