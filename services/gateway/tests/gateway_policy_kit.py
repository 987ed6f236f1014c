"""The registry's side of the policy gate, played by tests: approvals and gates as events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from gateway_testkit import Admin, GatewayServer
from sqlalchemy import text

from modelyard_common.contracts import EVENTS_EXCHANGE
from modelyard_common.db import make_engine
from modelyard_common.events import CloudEvent, new_event
from modelyard_common.governance import GOVERNANCE_ROUTING_KEYS
from modelyard_common.messaging import Binding, Broker
from modelyard_gateway.governance.consumer import GOVERNANCE_QUEUE
from modelyard_testkit.testing import wait_for


@pytest.fixture
async def registry(gateway: GatewayServer) -> AsyncIterator[Broker]:
    """A broker connection to publish as the registry (the gateway's queue declared first)."""
    broker = Broker(gateway.settings.amqp_url)
    await broker.connect()
    await broker.declare_queue(
        GOVERNANCE_QUEUE,
        [Binding(EVENTS_EXCHANGE, key) for key in GOVERNANCE_ROUTING_KEYS],
        delivery_limit=gateway.settings.consumer_delivery_limit,
    )
    yield broker
    await broker.close()


async def say(broker: Broker, event_type: str, data: dict[str, Any]) -> CloudEvent:
    event = new_event(type=event_type, source="modelyard/registry", data=data)
    await broker.publish(event, exchange=EVENTS_EXCHANGE, routing_key=event.type)
    return event


async def choose_gate(broker: Broker, admin: Admin, gate: str) -> None:
    await say(broker, "registry.policy.updated", {"workspace": admin.workspace, "gate": gate})


async def projected(
    gateway: GatewayServer, admin: Admin, *, gate: str, model_id: uuid.UUID, approval: str
) -> None:
    """Wait until the gateway's projection holds the gate and the model's approval."""
    engine = make_engine(gateway.settings.database_url, pool_size=1)

    async def applied() -> bool:
        async with engine.connect() as conn:
            found = (
                await conn.execute(
                    text(
                        "SELECT (SELECT gate FROM gateway.workspace_policies WHERE workspace = :w),"
                        " (SELECT approval FROM gateway.model_approvals WHERE model_id = :m)"
                    ),
                    {"w": admin.workspace, "m": model_id},
                )
            ).one()
        return tuple(found) == (gate, approval)

    try:
        await wait_for(applied, timeout=10)
    finally:
        await engine.dispose()


def model(admin: Admin, model_id: uuid.UUID, approval: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(model_id),
        "workspace": admin.workspace,
        "name": "scorer",
        "approval": approval,
        "updated_by": "bob",
        **extra,
    }


async def bind(admin: Admin, name: str, model_id: uuid.UUID) -> httpx.Response:
    return await admin.http.post(
        "/v1/groups", json={"name": name, "registry_model_id": str(model_id)}
    )
