"""Consumes the registry's approval and policy events into the policy gate's projection."""

from __future__ import annotations

from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelyard_common.contracts import EVENTS_EXCHANGE
from modelyard_common.events import CloudEvent
from modelyard_common.governance import GOVERNANCE_ROUTING_KEYS, POLICY_UPDATED, Governance
from modelyard_common.inbox import KeyedSerializer, idempotent_handler
from modelyard_common.messaging import Binding, Broker
from modelyard_gateway.db import ProcessedEvent, announce_config_change
from modelyard_gateway.governance.projection import projection
from modelyard_gateway.settings import GatewaySettings

GOVERNANCE_QUEUE = "gateway.registry-models"


async def apply_governance_event(
    session: AsyncSession, event: CloudEvent, *, gate: Governance
) -> None:
    """Project one registry event; every replica rebuilds its routing once it commits.

    Bound groups of a model that becomes blocked stop serving within a NOTIFY round trip.
    """
    changed = await gate.apply_event(session, event)
    if changed is not None or event.type == POLICY_UPDATED:
        await announce_config_change(session)


async def start_consumer(
    broker: Broker, sessionmaker: async_sessionmaker[AsyncSession], settings: GatewaySettings
) -> None:
    """Start consuming registry model and policy events (one model's events in order)."""
    registry = idempotent_handler(
        sessionmaker,
        ProcessedEvent,
        GOVERNANCE_QUEUE,
        partial(apply_governance_event, gate=projection(settings)),
    )
    await broker.consume(
        GOVERNANCE_QUEUE,
        [Binding(EVENTS_EXCHANGE, key) for key in GOVERNANCE_ROUTING_KEYS],
        KeyedSerializer(registry, lambda e: str(e.data.get("id") or e.data.get("workspace"))),
        delivery_limit=settings.consumer_delivery_limit,
    )
