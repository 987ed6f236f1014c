"""The gateway's FastAPI app: admin API, OpenAI-compatible API, health and metrics."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from modelyard_common.observability import configure_logging
from modelyard_common.web import ReadinessCheck, default_readiness
from modelyard_common.web import create_app as create_service_app
from modelyard_gateway.groups.router import router as groups_router
from modelyard_gateway.instances.router import router as instances_router
from modelyard_gateway.keys.router import router as keys_router
from modelyard_gateway.proxy.router import (
    POST_PATHS,
    ProxyEndpoints,
    ProxyFastPath,
    build_router,
)
from modelyard_gateway.runtime.runner import Runtime
from modelyard_gateway.settings import GatewaySettings

DESCRIPTION = """
One OpenAI-compatible endpoint in front of grouped backends.

* **OpenAI API** (`Authorization: Bearer sk-...` client keys): `/v1/chat/completions`,
  `/v1/completions`, `/v1/embeddings`, `/v1/models`. `model` names a model group; the gateway
  answers from the group's first available instance and says which one in
  `x-modelyard-instance` (and how many it tried in `x-modelyard-attempts`). Errors use OpenAI's
  error shape.
* **Admin API** (bearer token of your OpenID issuer; viewers read, editors write groups, admins
  create instances and change where they send traffic, admins and operators run instances and
  manage keys): model groups, model instances, client API keys. Secrets are write-only. Errors
  are RFC 9457 problem details.
"""

TAGS = [
    {"name": "openai", "description": "OpenAI-compatible API for clients with API keys."},
    {"name": "groups", "description": "Model groups: names clients use, ordered instances."},
    {"name": "instances", "description": "Model instances: local or cloud backends."},
    {"name": "keys", "description": "Client API keys."},
    {"name": "operations", "description": "Health and metrics."},
]


def _readiness(request: Request) -> dict[str, ReadinessCheck]:
    checks = default_readiness(request)
    settings: GatewaySettings = request.app.state.settings
    if not settings.consume_events:
        checks.pop("broker", None)
    return checks


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Return the gateway app; its lifespan starts the runtime (config, health, listeners)."""
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Start the runtime for the app's life and stop it afterwards."""
        runtime = Runtime(settings)
        runtime.bind(app)
        await runtime.start()
        # Everything loaded so far lives as long as the process: keep it out of the cyclic GC,
        # whose full collections would otherwise show up as latency spikes under load.
        gc.freeze()
        try:
            yield
        finally:
            await runtime.stop()

    app = create_service_app(
        title="Modelyard gateway",
        description=DESCRIPTION,
        version="0.1.0",
        settings=settings,
        routers=[groups_router, instances_router, keys_router],
        lifespan=lifespan,
        readiness=_readiness,
        openapi_tags=TAGS,
        # The proxy reads these under its own limit (max_body_bytes).
        raw_bodies={("POST", path): None for path in POST_PATHS},
    )
    endpoints = ProxyEndpoints(app.state)
    app.include_router(build_router(endpoints))
    app.add_middleware(ProxyFastPath, endpoints=endpoints)
    return app


def factory() -> FastAPI:
    """Return the app as `modelyard-gateway serve` runs it (logging configured)."""
    settings = GatewaySettings()
    configure_logging(settings.service_name, settings.log_level, json_logs=settings.log_json)
    return create_app(settings)
