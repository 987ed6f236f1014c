"""Consumes the deployer's endpoint events into bound groups (idempotent by event id)."""

from __future__ import annotations

from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelyard_common.contracts import (
    ENDPOINT_GONE,
    ENDPOINT_READY,
    EVENTS_EXCHANGE,
    EndpointAnnouncement,
)
from modelyard_common.events import CloudEvent
from modelyard_common.inbox import idempotent_handler
from modelyard_common.messaging import Binding, Broker
from modelyard_gateway.crypto import SecretBox
from modelyard_gateway.db import ProcessedEvent
from modelyard_gateway.endpoints import service
from modelyard_gateway.settings import GatewaySettings

QUEUE = "gateway.endpoints"


async def apply_event(
    session: AsyncSession, event: CloudEvent, *, settings: GatewaySettings
) -> None:
    """Apply one endpoint event inside the consumer's transaction (in deployment order)."""
    announcement = EndpointAnnouncement.model_validate(event.data)
    if not await service.in_order(session, announcement=announcement):
        return
    if event.type == ENDPOINT_READY:
        token = service.ingress_credential(
            announcement,
            seal_key=settings.ingress_seal_key,
            box=SecretBox(settings.encryption_key),
        )
        await service.endpoint_ready(session, announcement=announcement, token_sealed=token)
    elif event.type == ENDPOINT_GONE:
        await service.endpoint_gone(session, announcement=announcement)


async def start_consumer(
    broker: Broker, sessionmaker: async_sessionmaker[AsyncSession], settings: GatewaySettings
) -> None:
    """Start consuming endpoint events on the gateway's durable quorum queue."""
    handler = idempotent_handler(
        sessionmaker,
        ProcessedEvent,
        QUEUE,
        partial(apply_event, settings=settings),
    )
    await broker.consume(
        QUEUE,
        [
            Binding(EVENTS_EXCHANGE, ENDPOINT_READY),
            Binding(EVENTS_EXCHANGE, ENDPOINT_GONE),
        ],
        handler,
        delivery_limit=settings.consumer_delivery_limit,
    )
