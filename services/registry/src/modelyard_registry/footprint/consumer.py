"""The footprint's event consumers: deployment states (where each model runs) and gateway usage.

Each applies an event id once, in the same transaction as its effects, and acks after commit.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelyard_common.contracts import (
    DEPLOYMENT_STATE_CHANGED,
    EVENTS_EXCHANGE,
    GATEWAY_USAGE_RECORDED,
)
from modelyard_common.inbox import KeyedSerializer, idempotent_handler
from modelyard_common.messaging import Binding, Broker, Consumer
from modelyard_registry.db import ProcessedEvent
from modelyard_registry.footprint.service import apply_deployment_event, apply_usage_event
from modelyard_registry.settings import RegistrySettings


async def start_consumers(
    broker: Broker,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: RegistrySettings,
) -> list[Consumer]:
    """Declare the registry's queues and start consuming them; return the consumers."""
    queue = f"{settings.queue_prefix}.deployment-states"
    handler = KeyedSerializer(
        idempotent_handler(sessionmaker, ProcessedEvent, queue, apply_deployment_event),
        lambda e: str(e.data.get("deployment_id") or e.subject),
    )
    states = await broker.consume(
        queue,
        [Binding(EVENTS_EXCHANGE, DEPLOYMENT_STATE_CHANGED)],
        handler,
        delivery_limit=settings.consumer_delivery_limit,
    )
    # Deltas add up in any order: no per-key serialisation needed, only once per event id.
    usage_queue = f"{settings.queue_prefix}.gateway-usage"
    usage = await broker.consume(
        usage_queue,
        [Binding(EVENTS_EXCHANGE, GATEWAY_USAGE_RECORDED)],
        idempotent_handler(sessionmaker, ProcessedEvent, usage_queue, apply_usage_event),
        delivery_limit=settings.consumer_delivery_limit,
    )
    return [states, usage]
