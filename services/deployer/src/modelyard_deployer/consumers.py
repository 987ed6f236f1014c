"""The deployer's event consumers: agent reports, heartbeats, registry model changes.

Each applies an event id once, in the same transaction as its effects, and acks after commit.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelyard_common.contracts import DEPLOYMENT_REPORTED, DEVICE_HEARTBEAT, EVENTS_EXCHANGE
from modelyard_common.events import CloudEvent
from modelyard_common.inbox import KeyedSerializer, SessionHandler, idempotent_handler
from modelyard_common.messaging import Binding, Broker, Consumer, EventHandler
from modelyard_deployer.db import ProcessedEvent
from modelyard_deployer.deployments.reports import apply_report
from modelyard_deployer.devices.service import apply_heartbeat
from modelyard_deployer.registry_models.service import apply_registry_event
from modelyard_deployer.settings import DeployerSettings


def _deployment_key(event: CloudEvent) -> str:
    return str(event.data.get("deployment_id") or event.subject or event.id)


async def start_consumers(
    broker: Broker,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: DeployerSettings,
) -> list[Consumer]:
    """Declare the deployer's queues and start consuming them; return the consumers."""
    prefix = settings.queue_prefix
    offline_after = timedelta(seconds=settings.device_offline_after_s)

    def once(queue: str, handle: SessionHandler) -> EventHandler:
        return idempotent_handler(sessionmaker, ProcessedEvent, queue, handle)

    def in_transaction(handle: SessionHandler) -> EventHandler:
        # For heartbeats: applying one twice changes nothing (only a newer one is applied), and
        # recording every heartbeat's id would grow `processed_events` by the fleet's pulse.
        async def handler(event: CloudEvent) -> None:
            async with sessionmaker() as session, session.begin():
                await handle(session, event)

        return handler

    reports = f"{prefix}.deployment-reports"
    heartbeats = f"{prefix}.device-heartbeats"
    registry = f"{prefix}.registry-models"
    routes: list[tuple[str, str, EventHandler]] = [
        (
            reports,
            DEPLOYMENT_REPORTED,
            KeyedSerializer(once(reports, apply_report), _deployment_key),
        ),
        (
            heartbeats,
            DEVICE_HEARTBEAT,
            in_transaction(partial(apply_heartbeat, offline_after=offline_after)),
        ),
        (
            registry,
            "registry.model.*",
            KeyedSerializer(once(registry, apply_registry_event), lambda e: str(e.data.get("id"))),
        ),
    ]
    consumers = []
    for queue, routing_key, handler in routes:
        consumers.append(
            await broker.consume(
                queue,
                [Binding(EVENTS_EXCHANGE, routing_key)],
                handler,
                delivery_limit=settings.consumer_delivery_limit,
            )
        )
    return consumers
