"""Consumes the deployer's endpoint events into bound groups (idempotent by event id)."""

from __future__ import annotations

from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.contracts import ENDPOINT_GONE, ENDPOINT_READY, EndpointAnnouncement
from modelyard_common.event_queues import EventQueue
from modelyard_common.events import CloudEvent
from modelyard_gateway.crypto import SecretBox
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


def endpoint_queue(settings: GatewaySettings) -> EventQueue:
    """Return the gateway's durable queue of the deployer's endpoint events."""
    return EventQueue(
        QUEUE, (ENDPOINT_READY, ENDPOINT_GONE), partial(apply_event, settings=settings)
    )
