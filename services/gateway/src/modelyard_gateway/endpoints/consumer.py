"""Consumes the deployer's endpoint events into bound groups, and the registry's approvals and
policies into the policy gate's projection (each idempotent by event id)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.contracts import (
    ENDPOINT_GONE,
    ENDPOINT_READY,
    EVENTS_EXCHANGE,
    EndpointAnnouncement,
)
from modelyard_common.events import CloudEvent
from modelyard_common.governance import GOVERNANCE_ROUTING_KEYS, POLICY_UPDATED, Governance
from modelyard_common.inbox import KeyedSerializer, idempotent_handler
from modelyard_common.messaging import Binding, Broker
from modelyard_gateway.crypto import SecretBox
from modelyard_gateway.db import ProcessedEvent, announce_config_change
from modelyard_gateway.deps import governance
from modelyard_gateway.endpoints import service
from modelyard_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from modelyard_gateway.runtime.runner import Runtime

QUEUE = "gateway.endpoints"
GOVERNANCE_QUEUE = "gateway.registry-models"


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


async def apply_governance_event(
    session: AsyncSession, event: CloudEvent, *, gate: Governance
) -> None:
    """Project one registry event; every replica rebuilds its routing once it commits.

    Bound groups of a model that becomes blocked stop serving within a NOTIFY round trip.
    """
    changed = await gate.apply_event(session, event)
    if changed is not None or event.type == POLICY_UPDATED:
        await announce_config_change(session)


async def start_consumer(broker: Broker, runtime: Runtime) -> None:
    """Start consuming endpoint events on the gateway's durable quorum queue."""
    handler = idempotent_handler(
        runtime.sessionmaker,
        ProcessedEvent,
        QUEUE,
        partial(apply_event, settings=runtime.settings),
    )
    await broker.consume(
        QUEUE,
        [
            Binding(EVENTS_EXCHANGE, ENDPOINT_READY),
            Binding(EVENTS_EXCHANGE, ENDPOINT_GONE),
        ],
        handler,
        delivery_limit=runtime.settings.consumer_delivery_limit,
    )
    registry = idempotent_handler(
        runtime.sessionmaker,
        ProcessedEvent,
        GOVERNANCE_QUEUE,
        partial(apply_governance_event, gate=governance(runtime.settings)),
    )
    await broker.consume(
        GOVERNANCE_QUEUE,
        [Binding(EVENTS_EXCHANGE, key) for key in GOVERNANCE_ROUTING_KEYS],
        KeyedSerializer(registry, lambda e: str(e.data.get("id") or e.data.get("workspace"))),
        delivery_limit=runtime.settings.consumer_delivery_limit,
    )
