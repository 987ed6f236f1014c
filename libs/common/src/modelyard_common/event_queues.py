"""A service's event queues as data: each feature declares its queue, the wiring starts them all.

A feature says which events it wants on which durable queue and how to apply one inside a
transaction; `consume_once` binds the queue to the events exchange and applies each event id
once (the inbox), acking after the commit:

    # endpoints/consumer.py
    def endpoint_queue(settings) -> EventQueue:
        return EventQueue("gateway.endpoints", (ENDPOINT_READY, ENDPOINT_GONE), apply_event)

    # app.py, once the broker is reachable
    await consume_once(broker, sessionmaker, ProcessedEvent, endpoint_queue(settings), ...)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelyard_common.contracts import EVENTS_EXCHANGE
from modelyard_common.events import CloudEvent
from modelyard_common.inbox import (
    KeyedSerializer,
    ProcessedEventMixin,
    SessionHandler,
    idempotent_handler,
)
from modelyard_common.messaging import Binding, Broker, Consumer, EventHandler
from modelyard_common.pacing import Pacer

__all__ = ["EventQueue", "consume_once"]


@dataclass(frozen=True, slots=True)
class EventQueue:
    """A durable queue of domain events: its name, the routing keys it binds, the handler.

    With `in_order_of`, events of one key (a deployment, a model) are applied one after
    another in delivery order; events of different keys still run concurrently.
    """

    name: str
    routing_keys: tuple[str, ...]
    handle: SessionHandler
    in_order_of: Callable[[CloudEvent], str] | None = None


async def consume_once(
    broker: Broker,
    sessionmaker: async_sessionmaker[AsyncSession],
    processed: type[ProcessedEventMixin],
    queue: EventQueue,
    *,
    delivery_limit: int,
    pacer: Pacer | None = None,
) -> Consumer:
    """Return the started consumer of `queue`, applying each event id once (in `processed`).

    With a `pacer`, each event is applied in its turn (see `modelyard_common.pacing`): a backlog
    drains without taking the loop from the service's requests.
    """
    handler: EventHandler = idempotent_handler(sessionmaker, processed, queue.name, queue.handle)
    if pacer is not None:
        handler = _paced(handler, pacer)
    if queue.in_order_of is not None:
        handler = KeyedSerializer(handler, queue.in_order_of)
    return await broker.consume(
        queue.name,
        [Binding(EVENTS_EXCHANGE, key) for key in queue.routing_keys],
        handler,
        delivery_limit=delivery_limit,
    )


def _paced(handler: EventHandler, pacer: Pacer) -> EventHandler:
    async def paced(event: CloudEvent) -> None:
        async with pacer.turn():
            await handler(event)

    return paced
