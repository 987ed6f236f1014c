"""The consumer of this device's command queue `device.<id>` (durable, on `aimodels.devices`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from uuid import UUID

from modelyard_common.contracts import DEVICES_EXCHANGE, device_routing_key
from modelyard_common.events import CloudEvent
from modelyard_common.messaging import Binding, Broker, Consumer

log = logging.getLogger("modelyard.agent")

EventHandler = Callable[[CloudEvent], Awaitable[None]]


def by_type(handlers: Mapping[str, EventHandler], default: EventHandler) -> EventHandler:
    """Return a handler passing each event to the handler of its type (else to `default`)."""

    async def handle(event: CloudEvent) -> None:
        await handlers.get(event.type, default)(event)

    return handle


class CommandConsumer:
    """Consumes the device's command queue once the broker is reachable (retrying until then)."""

    def __init__(
        self,
        broker: Broker,
        device_id: UUID,
        handle: Callable[[CloudEvent], Awaitable[None]],
        *,
        delivery_limit: int,
    ) -> None:
        self.broker = broker
        self.queue_name = device_routing_key(device_id)
        self.handle = handle
        self.delivery_limit = delivery_limit
        self.consumer: Consumer | None = None
        # Set once the command queue is declared and consumed (tests and readiness wait on it).
        self.consuming = asyncio.Event()

    async def run(self) -> None:
        """Connect (retrying with backoff while the broker is unreachable), then consume."""
        await self.broker.connect_forever(log)
        self.consumer = await self.broker.consume(
            self.queue_name,
            [Binding(DEVICES_EXCHANGE, self.queue_name)],
            self.handle,
            delivery_limit=self.delivery_limit,
        )
        self.consuming.set()
        log.info("consuming commands from %s", self.queue_name)
