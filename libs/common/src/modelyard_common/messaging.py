"""RabbitMQ with aio-pika: robust connection, topology, confirmed publishing, safe consuming."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.connection import make_url
from pydantic import ValidationError

from modelyard_common.contracts import (
    DEAD_LETTER_EXCHANGE,
    DEVICES_EXCHANGE,
    EVENTS_EXCHANGE,
    REPLIES_EXCHANGE,
)
from modelyard_common.events import CloudEvent

log = logging.getLogger("modelyard.messaging")

CONTENT_TYPE = "application/cloudevents+json"
EventHandler = Callable[[CloudEvent], Awaitable[None]]
EXCHANGES = (EVENTS_EXCHANGE, DEVICES_EXCHANGE, DEAD_LETTER_EXCHANGE, REPLIES_EXCHANGE)


@dataclass(frozen=True)
class Binding:
    exchange: str
    routing_key: str


class Broker:
    """One robust connection and a confirming channel; reconnects and resumes by itself."""

    def __init__(
        self, url: str, *, prefetch: int = 32, user_id: str | None = None, declare: bool = True
    ) -> None:
        """`user_id` is stamped on every publish (the broker refuses it unless it is our login).

        With `declare=False` (a device's restricted login) nothing is declared: exchanges and
        queues must exist already, and the login needs no configure permission.
        """
        self.url = url
        self.prefetch = prefetch
        self.user_id = user_id
        self.declare = declare
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._lock = asyncio.Lock()
        # Bumped by close(): a connect() that was under way when close() ran must not keep the
        # connection it opened (nobody would ever close it).
        self._closes = 0

    async def connect_forever(self, logger: logging.Logger = log) -> None:
        """Connect, retrying with backoff (up to 15 s apart) while the broker is unreachable."""
        delay = 0.5
        while True:
            try:
                await self.connect()
                return
            except Exception as exc:
                logger.warning("broker unreachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    async def connect(self, *, timeout: float = 10.0) -> None:
        """Open the connection and declare the shared exchanges."""
        async with self._lock:
            if self._channel is not None:
                return
            closes = self._closes
            # Built here rather than by aio_pika.connect_robust, which drops a connection whose
            # first attempt fails while its reconnect loop runs on (a leak per failed connect).
            connection = aio_pika.RobustConnection(make_url(self.url))
            try:
                await connection.connect(timeout=timeout)
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                await channel.set_qos(prefetch_count=self.prefetch)
                for name in EXCHANGES:
                    if self.declare:
                        self._exchanges[name] = await channel.declare_exchange(
                            name, aio_pika.ExchangeType.TOPIC, durable=True
                        )
                    else:
                        self._exchanges[name] = await channel.get_exchange(name, ensure=False)
            except BaseException:
                # A half-set-up connection would otherwise stay open and keep reconnecting.
                await connection.close()
                self._exchanges.clear()
                raise
            if closes != self._closes:
                await connection.close()
                self._exchanges.clear()
                raise ConnectionError("the broker connection was closed while it was connecting")
            self._connection = connection
            self._channel = channel

    @property
    def channel(self) -> AbstractChannel:
        if self._channel is None:
            raise RuntimeError("Broker.connect() has not been called")
        return self._channel

    @property
    def is_connected(self) -> bool:
        """Return whether the connection is open right now (false while it reconnects)."""
        connection = self._connection
        if connection is None or connection.is_closed:
            return False
        # A robust connection stays "open" while it reconnects; the AMQP link underneath says
        # whether messages can go out now.
        transport = getattr(connection, "transport", None)
        link = getattr(transport, "connection", None)
        return link is not None and not link.is_closed

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        self._closes += 1
        if self._connection is not None:
            await self._connection.close()
        self._connection = None
        self._channel = None
        self._exchanges.clear()

    async def declare_queue(
        self, name: str, bindings: Sequence[Binding], *, delivery_limit: int = 5
    ) -> AbstractQueue:
        """Declare a durable quorum queue with its dead-letter queue, and bind it."""
        dead = await self.channel.declare_queue(
            f"{name}.dead", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(self._exchanges[DEAD_LETTER_EXCHANGE], routing_key=name)
        queue = await self.channel.declare_queue(
            name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                "x-dead-letter-routing-key": name,
                "x-delivery-limit": delivery_limit,
            },
        )
        for binding in bindings:
            await queue.bind(self._exchanges[binding.exchange], routing_key=binding.routing_key)
        return queue

    async def publish(
        self, event: CloudEvent, *, exchange: str, routing_key: str, mandatory: bool = False
    ) -> None:
        """Publish a persistent event and wait for the broker's confirm.

        With `mandatory`, a message no queue takes raises instead of vanishing.
        """
        await self._exchanges[exchange].publish(
            self.message(event), routing_key=routing_key, mandatory=mandatory
        )

    def message(
        self, event: CloudEvent, *, transient: bool = False, expiration_s: float | None = None
    ) -> aio_pika.Message:
        """Return `event` as an AMQP message stamped with our login.

        A `transient` message is not written to disk, and one with `expiration_s` is dropped by
        the broker when nobody took it in time (answers and requests that nobody waits for).
        """
        return aio_pika.Message(
            body=event.to_bytes(),
            content_type=CONTENT_TYPE,
            message_id=event.id,
            type=event.type,
            user_id=self.user_id,
            delivery_mode=(
                aio_pika.DeliveryMode.NOT_PERSISTENT
                if transient
                else aio_pika.DeliveryMode.PERSISTENT
            ),
            expiration=expiration_s,
        )

    @contextlib.asynccontextmanager
    async def own_channel(self) -> AsyncIterator[AbstractRobustChannel]:
        """Yield a confirming channel of its own, closed afterwards.

        For a conversation whose errors must not close the shared channel (a passive declare of
        a missing queue, a publish the broker refuses), and whose consumers and exclusive queues
        end with it.
        """
        connection = self._connection
        if connection is None or not self.is_connected:
            raise ConnectionError("the message broker is not connected")
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            yield channel
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def consume(
        self,
        queue_name: str,
        bindings: Sequence[Binding],
        handler: EventHandler,
        *,
        delivery_limit: int = 5,
        retry_delay_s: float = 0.5,
    ) -> Consumer:
        """Start consuming a queue with `handler`; return the running consumer.

        Without `declare`, the queue must exist (the deployer declares each device's queue).
        """
        if self.declare:
            queue = await self.declare_queue(queue_name, bindings, delivery_limit=delivery_limit)
        else:
            queue = await self.channel.declare_queue(queue_name, passive=True)
        consumer = Consumer(queue, handler, retry_delay_s=retry_delay_s)
        await consumer.start()
        return consumer


class Consumer:
    """Acks after the handler returns; a failing message is retried, then dead-lettered."""

    def __init__(
        self, queue: AbstractQueue, handler: EventHandler, *, retry_delay_s: float = 0.5
    ) -> None:
        self.queue = queue
        self.handler = handler
        self.retry_delay_s = retry_delay_s
        self._tag: str | None = None

    async def start(self) -> None:
        self._tag = await self.queue.consume(self._on_message)

    async def stop(self) -> None:
        if self._tag is not None:
            await self.queue.cancel(self._tag)
            self._tag = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            event = CloudEvent.model_validate_json(message.body)
        except ValidationError:
            log.error("parking a message that is not a CloudEvent on %s", self.queue.name)
            await message.reject(requeue=False)
            return
        event._sender = message.user_id
        try:
            await self.handler(event)
        except Exception:
            # The quorum queue counts redeliveries; past its delivery limit the message goes to
            # the dead-letter queue instead of looping forever.
            log.exception("handler failed for event %s (%s)", event.id, event.type)
            await asyncio.sleep(self.retry_delay_s)
            await message.nack(requeue=True)
            return
        await message.ack()
