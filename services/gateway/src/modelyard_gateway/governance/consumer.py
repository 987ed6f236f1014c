"""Consumes the registry's approval and policy events into the policy gate's projection."""

from __future__ import annotations

from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from modelyard_common.event_queues import EventQueue
from modelyard_common.events import CloudEvent
from modelyard_common.governance import GOVERNANCE_ROUTING_KEYS, POLICY_UPDATED, Governance
from modelyard_gateway.db import announce_config_change
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


def governance_queue(settings: GatewaySettings) -> EventQueue:
    """Return the gateway's durable queue of registry model and policy events.

    One model's events (or one workspace's policy changes) are applied in order.
    """
    return EventQueue(
        GOVERNANCE_QUEUE,
        GOVERNANCE_ROUTING_KEYS,
        partial(apply_governance_event, gate=projection(settings)),
        in_order_of=lambda e: str(e.data.get("id") or e.data.get("workspace")),
    )
