"""The registry's FastAPI application."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.auth import Principal
from modelyard_common.messaging import Broker, Consumer
from modelyard_common.observability import configure_logging
from modelyard_common.outbox import OutboxRelay
from modelyard_common.pagination import PageParams
from modelyard_common.web import ServiceRuntime
from modelyard_common.web import create_app as create_service_app
from modelyard_registry import __doc__ as DESCRIPTION
from modelyard_registry.ai_models.repository import ModelFilters
from modelyard_registry.ai_models.router import learning_types_router
from modelyard_registry.ai_models.router import router as models_router
from modelyard_registry.ai_models.schemas import AIModelCreate, LearningType
from modelyard_registry.ai_models.service import models
from modelyard_registry.ai_systems.router import router as systems_router
from modelyard_registry.approvals.router import router as approvals_router
from modelyard_registry.db import IdempotencyRecord, OutboxEvent, ProcessedEvent
from modelyard_registry.evidence.router import router as evidence_router
from modelyard_registry.footprint.consumer import start_consumers
from modelyard_registry.footprint.router import router as footprint_router
from modelyard_registry.links.router import router as links_router
from modelyard_registry.obligations.router import router as obligations_router
from modelyard_registry.policy.router import router as policy_router
from modelyard_registry.reports.router import router as reports_router
from modelyard_registry.settings import RegistrySettings

VERSION = "0.1.0"
# The OpenAPI document's tags, in order, each with what its routes are about.
TAGS = [
    {"name": name, "description": description}
    for name, description in {
        "models": "AI models: what they are, what they do, their limits.",
        "approvals": "Model review: requested by one person, decided by another.",
        "systems": "AI systems and their EU AI Act risk level.",
        "obligations": "The EU AI Act obligations of a system, by risk level and role.",
        "evidence": "Documents that prove obligations are met.",
        "links": "Which system uses which model, and how.",
        "footprint": "Where each model runs now, and where it ran when.",
        "reports": "Inventory export and import; AI Act registers (PDF).",
        "reference": "Reference data for forms.",
        "operations": "Health and metrics.",
    }.items()
]


async def warm_up(session: AsyncSession) -> None:
    """Run the hot statements once (register, read and list a model), to be rolled back."""
    principal = Principal(sub="warm-up", workspace="warm-up", roles=frozenset({"editor"}))
    body = AIModelCreate(name="warm-up", learning_type=LearningType.supervised)
    created = await models.create(session, principal=principal, body=body)
    await models.get(session, principal=principal, item_id=created.id)
    page = PageParams(limit=50, cursor=None, sort="name")
    await models.page(session, principal=principal, filters=ModelFilters(), params=page)


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    """Return the registry app; resources open in its lifespan."""
    settings = settings or RegistrySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging("registry", settings.log_level, json_logs=settings.log_json)
        runtime = ServiceRuntime(settings)
        runtime.bind(app)
        runtime.retain(
            IdempotencyRecord.created_at, timedelta(hours=settings.idempotency_retention_h)
        )
        relay = OutboxRelay(
            runtime.sessionmaker,
            OutboxEvent,
            runtime.broker,
            database_url=settings.database_url,
            poll_interval_s=settings.outbox_poll_interval_s,
        )
        runtime.retain(
            ProcessedEvent.processed_at, timedelta(hours=settings.processed_events_retention_h)
        )
        app.state.relay = relay
        consumers: list[Consumer] = []

        async def on_broker_ready(broker: Broker) -> None:
            relay.start()
            if settings.consume_events:
                consumers.extend(await start_consumers(broker, runtime.sessionmaker, settings))

        runtime.on_broker_ready(on_broker_ready)
        await runtime.warm(warm_up)
        await runtime.start()
        # Consumers and the relay start once the broker is reachable: let that happen before
        # the first requests, not while they are served (a broker that is down is not waited for).
        with contextlib.suppress(Exception):
            await runtime.wait_broker(timeout=settings.startup_broker_wait_s)
        try:
            yield
        finally:
            for consumer in consumers:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await relay.stop()
            await runtime.stop()

    return create_service_app(
        title="Modelyard registry",
        description=DESCRIPTION or "",
        version=VERSION,
        settings=settings,
        routers=[
            learning_types_router,
            models_router,
            approvals_router,
            footprint_router,
            systems_router,
            obligations_router,
            evidence_router,
            links_router,
            reports_router,
            policy_router,
        ],
        lifespan=lifespan,
        openapi_tags=TAGS,
        # Streamed under their own limits (evidence_max_bytes, the reports' MAX_IMPORT_BYTES).
        raw_bodies={
            ("PUT", "/v1/evidence/{evidence_id}/file"): None,
            ("POST", "/v1/inventory/import"): None,
        },
    )
