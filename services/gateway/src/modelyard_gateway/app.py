"""The gateway's FastAPI app: admin API, OpenAI-compatible API, health and metrics (wiring)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from fastapi import FastAPI, Request

from modelyard_common.event_queues import consume_once
from modelyard_common.governance import RegistryConfirmation
from modelyard_common.infrastructure_upkeep import relay_and_purge
from modelyard_common.messaging import Broker
from modelyard_common.observability import configure_logging
from modelyard_common.outbox import OutboxRelay
from modelyard_common.pacing import Pacer
from modelyard_common.web import ReadinessCheck, ServiceRuntime, default_readiness
from modelyard_common.web import create_app as create_service_app
from modelyard_gateway.db import ProcessedEvent, infrastructure
from modelyard_gateway.endpoints.consumer import endpoint_queue
from modelyard_gateway.governance.consumer import governance_queue
from modelyard_gateway.governance.projection import projection
from modelyard_gateway.groups.router import router as groups_router
from modelyard_gateway.instances.check import CheckLimiter
from modelyard_gateway.instances.router import router as instances_router
from modelyard_gateway.keys.router import router as keys_router
from modelyard_gateway.limits.meter import Meter
from modelyard_gateway.limits.router import router as limits_router
from modelyard_gateway.proxy.endpoints import ProxyEndpoints
from modelyard_gateway.proxy.fastpath import ProxyFastPath
from modelyard_gateway.proxy.router import router as openai_router
from modelyard_gateway.proxy.service import ProxyService
from modelyard_gateway.proxy.wire import ATTEMPTS, INSTANCE, POLICY_WARNING, POST_PATHS
from modelyard_gateway.requestlog.retention import request_log_purge
from modelyard_gateway.requestlog.router import router as requests_router
from modelyard_gateway.requestlog.writer import RequestLog
from modelyard_gateway.routing.engine import RoutingEngine
from modelyard_gateway.settings import GatewaySettings
from modelyard_gateway.telemetry import configure as configure_telemetry
from modelyard_gateway.usage.service import UsageRecorder

if TYPE_CHECKING:
    from modelyard_gateway.telemetry.otel import Telemetry

BROWSER_READABLE = (
    [name.decode() for name in (INSTANCE, ATTEMPTS, POLICY_WARNING)]
    + [
        f"x-ratelimit-{what}-{kind}"
        for what in ("limit", "remaining", "reset")
        for kind in ("requests", "tokens")
    ]
    + ["Retry-After"]
)

# How long the policy gate waits for the registry before it judges from its projection alone.
REGISTRY_TIMEOUT_S = 5.0

DESCRIPTION = """
One OpenAI-compatible endpoint in front of grouped backends.

* **OpenAI API** (`Authorization: Bearer sk-...` client keys): `/v1/chat/completions`,
  `/v1/completions`, `/v1/embeddings`, `/v1/models`. `model` names a model group; the gateway
  answers from the group's first available instance and says which one in
  `x-modelyard-instance` (and how many it tried in `x-modelyard-attempts`). Errors use OpenAI's
  error shape.
* **Admin API** (bearer token of your OpenID issuer; viewers read, editors write groups, admins
  create instances and change where they send traffic, admins and operators run instances and
  manage keys): model groups, model instances, client API keys, the request log. Secrets are
  write-only. Errors are RFC 9457 problem details.
"""

TAGS = [
    {"name": "openai", "description": "OpenAI-compatible API for clients with API keys."},
    {"name": "groups", "description": "Model groups: names clients use, ordered instances."},
    {"name": "instances", "description": "Model instances: local or cloud backends."},
    {"name": "keys", "description": "Client API keys, their limits, budgets and expiry."},
    {"name": "limits", "description": "The workspace's ceiling on every key's traffic."},
    {
        "name": "requests",
        "description": "The request log: one record per client request, kept for the "
        "configured retention.",
    },
    {"name": "operations", "description": "Health and metrics."},
]


def _readiness(request: Request) -> dict[str, ReadinessCheck]:
    checks = default_readiness(request)
    settings: GatewaySettings = request.app.state.settings
    if not settings.consume_events:
        checks.pop("broker", None)
    return checks


@dataclass(frozen=True, slots=True)
class Replica:
    """What one gateway replica runs besides requests, built and stopped by the lifespan."""

    runtime: ServiceRuntime
    routing: RoutingEngine
    usage: UsageRecorder
    meter: Meter
    requests: RequestLog
    relay: OutboxRelay
    registry_http: httpx.AsyncClient
    telemetry: Telemetry | None = None  # OpenTelemetry, when configured


def build_replica(app: FastAPI, settings: GatewaySettings) -> Replica:
    """Return the replica's parts, each exposed on `app.state` for the routes that read it."""
    runtime = ServiceRuntime(settings)
    runtime.bind(app)  # engine, sessionmaker, broker (readiness reads them)
    gate = projection(settings)
    routing = RoutingEngine(settings, runtime.engine, governance=gate)
    registry_http = httpx.AsyncClient(base_url=settings.registry_url, timeout=REGISTRY_TIMEOUT_S)
    usage = UsageRecorder(
        runtime.sessionmaker, flush_s=settings.usage_flush_s, replica=routing.replica_id
    )
    meter = Meter(runtime.engine, sync_s=settings.limits_sync_s, replica=routing.replica_id)
    requests = RequestLog(
        runtime.engine,
        replica=routing.replica_id,
        flush_s=settings.request_log_flush_s,
        batch=settings.request_log_batch,
        buffer=settings.request_log_buffer,
        body_bytes=settings.request_log_body_bytes,
    )
    runtime.housekeep("request log retention", request_log_purge(runtime.engine, settings))
    # Usage events leave by the outbox; a replica that does not connect to the broker
    # (consume_events off) leaves them to the relays of the others.
    relay = relay_and_purge(runtime, infrastructure)
    app.state.routing = routing
    app.state.confirmation = RegistryConfirmation(gate, registry_http)
    app.state.check_limiter = CheckLimiter(
        burst=settings.check_burst, window_s=settings.check_window_s
    )
    telemetry = configure_telemetry(settings)
    app.state.telemetry = telemetry
    return Replica(runtime, routing, usage, meter, requests, relay, registry_http, telemetry)


async def start_replica(app: FastAPI, settings: GatewaySettings, replica: Replica) -> None:
    """Load routing and shared state, then start listeners, health checks and consumers."""
    runtime, routing = replica.runtime, replica.routing
    await routing.start()
    app.state.proxy_endpoints = ProxyEndpoints(
        settings,
        catalog=routing.catalog,
        board=routing.board,
        proxy=ProxyService(board=routing.board, upstreams=routing.upstreams, settings=settings),
        usage=replica.usage,
        meter=replica.meter,
        requests=replica.requests,
        telemetry=replica.telemetry,
    )
    replica.usage.start()
    replica.meter.start()
    replica.requests.start()
    if replica.telemetry is not None:
        replica.telemetry.start()
    if not settings.consume_events:
        runtime.start_housekeeping()
        return

    # Serving comes first: while requests arrive, events take at most their share of the loop.
    pacer = Pacer(settings.events_share, app.state.proxy_endpoints.traffic.busy)

    async def on_broker_ready(broker: Broker) -> None:
        replica.relay.start()
        for queue in (endpoint_queue(settings), governance_queue(settings)):
            await consume_once(
                broker,
                runtime.sessionmaker,
                ProcessedEvent,
                queue,
                delivery_limit=settings.consumer_delivery_limit,
                pacer=pacer,
            )

    runtime.on_broker_ready(on_broker_ready)
    await runtime.start()


async def stop_replica(replica: Replica) -> None:
    """Flush the usage counts, the request log and telemetry, stop background work, close
    connections."""
    await replica.usage.stop()
    await replica.meter.stop()
    await replica.requests.stop()
    if replica.telemetry is not None:
        await replica.telemetry.stop()
    if replica.runtime.broker.is_connected:
        with contextlib.suppress(Exception):  # what stays unsent goes with another relay
            await asyncio.wait_for(replica.relay.publish_batch(), 5)
    await replica.relay.stop()
    await replica.routing.stop()
    await replica.runtime.stop()
    await replica.registry_http.aclose()


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Return the gateway app; its lifespan starts the replica (routing, health, listeners).

    Without `settings` (as `modelyard-gateway serve` runs it) they are read from the
    environment and the process's logging is configured from them.
    """
    if settings is None:
        settings = GatewaySettings()
        configure_logging(settings.service_name, settings.log_level, json_logs=settings.log_json)
    configured = settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Start the replica for the app's life and stop it afterwards."""
        replica = build_replica(app, configured)
        await start_replica(app, configured, replica)
        try:
            yield
        finally:
            await stop_replica(replica)

    app = create_service_app(
        title="Modelyard gateway",
        description=DESCRIPTION,
        version="0.1.0",
        settings=settings,
        routers=[groups_router, instances_router, keys_router, limits_router, requests_router],
        lifespan=lifespan,
        readiness=_readiness,
        openapi_tags=TAGS,
        # The proxy reads these under its own limit (max_body_bytes).
        raw_bodies={("POST", path): None for path in POST_PATHS},
        # What a browser (the console's playground) may read of an answer: which instance
        # served it, after how many attempts, the policy's warning, and the limits.
        expose_headers=BROWSER_READABLE,
        own_telemetry=True,
    )
    app.include_router(openai_router)
    app.add_middleware(ProxyFastPath, state=app.state)
    return app
