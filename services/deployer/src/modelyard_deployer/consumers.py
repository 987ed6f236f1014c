"""The deployer's event consumers: agent reports, heartbeats, registry model changes.

Each applies an event id once, in the same transaction as its effects, and acks after commit.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelyard_common.contracts import DEPLOYMENT_REPORTED, DEVICE_HEARTBEAT, EVENTS_EXCHANGE
from modelyard_common.inbox import idempotent_handler
from modelyard_common.messaging import Binding, Broker, Consumer
from modelyard_deployer.db import ProcessedEvent
from modelyard_deployer.deployments.reports import apply_report
from modelyard_deployer.devices.service import apply_heartbeat
from modelyard_deployer.registry_models.service import apply_registry_event
from modelyard_deployer.settings import DeployerSettings


async def start_consumers(
    broker: Broker,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: DeployerSettings,
) -> list[Consumer]:
    """Declare the deployer's queues and start consuming them; return the consumers."""
    prefix = settings.queue_prefix
    routes = [
        (f"{prefix}.deployment-reports", DEPLOYMENT_REPORTED, apply_report),
        (f"{prefix}.device-heartbeats", DEVICE_HEARTBEAT, apply_heartbeat),
        (f"{prefix}.registry-models", "registry.model.*", apply_registry_event),
    ]
    consumers = []
    for queue, routing_key, handle in routes:
        consumers.append(
            await broker.consume(
                queue,
                [Binding(EVENTS_EXCHANGE, routing_key)],
                idempotent_handler(sessionmaker, ProcessedEvent, queue, handle),
                delivery_limit=settings.consumer_delivery_limit,
            )
        )
    return consumers
