"""The deployer's consumers: agent reports, heartbeats, and registry models and policies.

Each applies an event id once, in the same transaction as its effects, and acks after commit.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelyard_common.contracts import DEPLOYMENT_REPORTED, DEVICE_HEARTBEAT, EVENTS_EXCHANGE
from modelyard_common.event_queues import EventQueue, consume_once
from modelyard_common.events import CloudEvent
from modelyard_common.governance import GOVERNANCE_ROUTING_KEYS, POLICY_UPDATED
from modelyard_common.inbox import SessionHandler
from modelyard_common.messaging import Binding, Broker, Consumer, EventHandler
from modelyard_deployer.db import ProcessedEvent
from modelyard_deployer.deployments.enforcement import rejudge
from modelyard_deployer.deployments.reports import apply_heartbeat, apply_report
from modelyard_deployer.settings import DeployerSettings


def _deployment_key(event: CloudEvent) -> str:
    return str(event.data.get("deployment_id") or event.subject or event.id)


def _registry_key(event: CloudEvent) -> str:
    # A policy change re-judges the whole workspace: it waits for that workspace's model events.
    if event.type == POLICY_UPDATED:
        return f"policy:{event.data.get('workspace')}"
    return str(event.data.get("id"))


async def start_consumers(
    broker: Broker,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: DeployerSettings,
) -> list[Consumer]:
    """Declare the deployer's queues and start consuming them; return the consumers."""
    prefix = settings.queue_prefix

    def in_transaction(handle: SessionHandler) -> EventHandler:
        # For heartbeats: applying one twice changes nothing (only a newer one is applied), and
        # recording every heartbeat's id would grow `processed_events` by the fleet's pulse.
        # Nor does a heartbeat need its commit on disk before the ack: one lost in a database
        # crash is replaced by the device's next, so the fleet's pulse need not wait for a WAL
        # flush per beat.
        async def handler(event: CloudEvent) -> None:
            async with sessionmaker() as session, session.begin():
                await session.execute(text("SET LOCAL synchronous_commit = off"))
                await handle(session, event)

        return handler

    limit = settings.consumer_delivery_limit
    applied_once = [
        EventQueue(
            f"{prefix}.deployment-reports",
            (DEPLOYMENT_REPORTED,),
            partial(apply_report, settings=settings),
            in_order_of=_deployment_key,
        ),
        EventQueue(
            f"{prefix}.registry-models",
            GOVERNANCE_ROUTING_KEYS,
            partial(rejudge, broker=broker, settings=settings),
            in_order_of=_registry_key,
        ),
    ]
    consumers = [
        await consume_once(broker, sessionmaker, ProcessedEvent, queue, delivery_limit=limit)
        for queue in applied_once
    ]
    heartbeats = in_transaction(partial(apply_heartbeat, settings=settings))
    consumers.append(
        await broker.consume(
            f"{prefix}.device-heartbeats",
            [Binding(EVENTS_EXCHANGE, DEVICE_HEARTBEAT)],
            heartbeats,
            delivery_limit=limit,
        )
    )
    return consumers
