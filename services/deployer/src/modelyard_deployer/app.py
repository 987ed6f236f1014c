"""The deployer's FastAPI app: routes, consumers, outbox relay, artifact store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
from fastapi import FastAPI

from modelyard_common.messaging import Broker, Consumer
from modelyard_common.outbox import OutboxRelay
from modelyard_common.web import ServiceRuntime
from modelyard_common.web import create_app as create_service_app
from modelyard_deployer import __version__
from modelyard_deployer.access.router import router as access_router
from modelyard_deployer.artifacts import build_store
from modelyard_deployer.consumers import start_consumers
from modelyard_deployer.db import IdempotencyRecord, OutboxEvent, ProcessedEvent
from modelyard_deployer.deployments.router import router as deployments_router
from modelyard_deployer.devices.broker_logins import BrokerLogins
from modelyard_deployer.devices.router import router as devices_router
from modelyard_deployer.provisioning.router import router as provisioning_router
from modelyard_deployer.settings import DeployerSettings
from modelyard_deployer.versions.router import router as versions_router

TAGS = [
    {"name": "versions", "description": "Model versions: uploaded AI project zips + manifests."},
    {"name": "devices", "description": "Edge devices running the agent."},
    {"name": "provisioning", "description": "Tokens that onboard devices in one command."},
    {"name": "deployments", "description": "Versions desired on devices, and their history."},
    {"name": "access", "description": "Per-model grants: viewer, deployer, editor."},
    {"name": "operations", "description": "Health and metrics."},
]


def create_app(settings: DeployerSettings | None = None) -> FastAPI:
    """Return the deployer app; its lifespan connects the broker, consumers and relay."""
    settings = settings or DeployerSettings()
    runtime = ServiceRuntime(settings)
    runtime.retain(IdempotencyRecord.created_at, timedelta(hours=settings.idempotency_retention_h))
    runtime.retain(
        ProcessedEvent.processed_at, timedelta(hours=settings.processed_events_retention_h)
    )
    relay = OutboxRelay(
        runtime.sessionmaker,
        OutboxEvent,
        runtime.broker,
        database_url=settings.database_url,
        poll_interval_s=settings.outbox_poll_interval_s,
    )
    consumers: list[Consumer] = []
    store = build_store(settings)
    staging_age = timedelta(hours=settings.artifact_staging_max_age_h)
    runtime.housekeep("artifact staging", lambda: store.sweep(staging_age))

    async def on_broker_ready(broker: Broker) -> None:
        relay.start()
        if settings.consume_events:
            consumers.extend(await start_consumers(broker, runtime.sessionmaker, settings))

    runtime.on_broker_ready(on_broker_ready)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.registry_http = httpx.AsyncClient(
            base_url=settings.registry_url, timeout=settings.registry_timeout_s
        )
        await runtime.start()
        try:
            yield
        finally:
            for consumer in consumers:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await relay.stop()
            await runtime.stop()
            await app.state.registry_http.aclose()
            await app.state.broker_logins.close()
            await store.close()

    app = create_service_app(
        title="Modelyard deployer",
        description="Model versions (zip + run manifest), devices, deployments and their "
        "history, and per-model access grants.",
        version=__version__,
        settings=settings,
        routers=[
            versions_router,
            provisioning_router,
            devices_router,
            deployments_router,
            access_router,
        ],
        lifespan=lifespan,
        openapi_tags=TAGS,
        # The upload is streamed to the store under its own limit (max_upload_bytes).
        raw_bodies={("POST", "/v1/models/{model_id}/versions"): None},
    )
    runtime.bind(app)
    app.state.artifact_store = store
    app.state.relay = relay
    app.state.broker_logins = BrokerLogins(
        settings.broker_management_url,
        settings.broker_vhost,
        timeout_s=settings.broker_management_timeout_s,
    )
    return app


def app_factory() -> FastAPI:
    """Return the app configured from the environment (uvicorn's `--factory` entry point)."""
    return create_app()
