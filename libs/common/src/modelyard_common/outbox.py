"""Transactional outbox: events are written with the business change, a relay publishes them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import BigInteger, DateTime, Identity, String, delete, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from modelyard_common.contracts import DEVICES_EXCHANGE, EVENTS_EXCHANGE
from modelyard_common.db import utcnow
from modelyard_common.events import CloudEvent
from modelyard_common.messaging import Broker

log = logging.getLogger("modelyard.outbox")


class OutboxMixin:
    """Columns of a service's `outbox` table."""

    position: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), unique=True)
    exchange: Mapped[str] = mapped_column(String(100))
    routing_key: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(1000))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def notify_channel(schema: str) -> str:
    """Return the LISTEN/NOTIFY channel that wakes a schema's relays."""
    return f"{schema}_outbox"


async def enqueue(
    session: AsyncSession,
    model: type[OutboxMixin],
    event: CloudEvent,
    *,
    exchange: str = EVENTS_EXCHANGE,
    routing_key: str | None = None,
) -> None:
    """Add `event` to the outbox inside the caller's transaction."""
    session.add(
        model(  # type: ignore[call-arg]
            event_id=event.id,
            exchange=exchange,
            routing_key=routing_key or event.type,
            payload=event.model_dump(mode="json", exclude_none=True),
        )
    )
    schema = model.__table__.schema  # type: ignore[attr-defined]
    # Delivered at commit only, so relays never wake for a rolled-back event.
    await session.execute(text("SELECT pg_notify(:c, '')"), {"c": notify_channel(schema)})


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """Return a plain libpq DSN for an SQLAlchemy asyncpg URL."""
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class OutboxRelay:
    """Publishes unsent outbox rows in order, with confirms; safe with several relays running."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        model: type[OutboxMixin],
        broker: Broker,
        *,
        database_url: str,
        poll_interval_s: float = 0.5,
        batch_size: int = 100,
        retention: timedelta = timedelta(days=7),
        after_publish: Callable[[CloudEvent], None] | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.model = model
        self.broker = broker
        self.database_url = database_url
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self.retention = retention
        self.after_publish = after_publish  # test hook: simulate a crash after publishing
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._listen_lost = False  # LISTEN was up once and went away (logged when it is back)
        self._listen_retry_at = 0.0
        self._closing = False
        self.listen_interval_s = 2.0  # how often a lost LISTEN is tried again

    @property
    def listening(self) -> bool:
        """Return whether the relay is woken by NOTIFY right now (else it only polls)."""
        return self._listener is not None and not self._listener.is_closed()

    @property
    def schema(self) -> str:
        return str(self.model.__table__.schema)  # type: ignore[attr-defined]

    async def publish_batch(self) -> int:
        """Publish one batch of unsent rows and mark them; return how many were published.

        Order is kept per routing key, also with several relays: a relay publishes a row only
        when no earlier row of its key is still unsent outside its own batch (claimed by another
        relay, or waiting for a retry). A row the broker refuses (say, a device queue that is
        gone) is retried with backoff, and later rows of the same routing key stay unsent until
        it goes (one already sent in the same batch goes again: consumers apply an id once).
        While the broker is unreachable nothing is marked and the whole batch waits.
        """
        m = self.model
        now = utcnow()
        waiting_keys = select(m.routing_key).where(
            m.published_at.is_(None), m.next_attempt_at > now
        )
        published = 0
        async with self.sessionmaker() as session, session.begin():
            rows = (
                await session.scalars(
                    select(m)
                    .where(m.published_at.is_(None), m.routing_key.not_in(waiting_keys))
                    .order_by(m.position)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            others = await self._others_first_unsent(session, rows)
            # An earlier row of a key that is not ours goes first: ours of that key wait.
            sendable = [r for r in rows if r.position <= others.get(r.routing_key, r.position)]
            events = [CloudEvent.model_validate(row.payload) for row in sendable]
            # All sent at once, in order: a channel keeps the order of what is published on it,
            # and waiting for each confirm before sending the next would cost a round trip
            # (and, with quorum queues, the broker's disk sync) per row.
            outcomes = await asyncio.gather(
                *(
                    self.broker.publish(
                        event,
                        exchange=row.exchange,
                        routing_key=row.routing_key,
                        mandatory=row.exchange == DEVICES_EXCHANGE,
                    )
                    for row, event in zip(sendable, events, strict=True)
                ),
                return_exceptions=True,
            )
            failed_keys: set[str] = set()
            for row, event, outcome in zip(sendable, events, outcomes, strict=True):
                if row.routing_key in failed_keys:
                    continue  # sent after a refused one: kept unsent, so it goes again after it
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, Exception):
                        raise outcome
                    if not self.broker.is_connected:
                        log.warning("broker unreachable; outbox waits: %s", outcome)
                        break
                    row.attempts += 1
                    row.last_error = str(outcome)[:1000]
                    row.next_attempt_at = now + timedelta(seconds=min(0.5 * 2**row.attempts, 30))
                    failed_keys.add(row.routing_key)
                    log.warning("outbox publish of %s refused: %s", row.event_id, outcome)
                    continue
                if self.after_publish is not None:
                    self.after_publish(event)
                row.published_at = utcnow()
                row.next_attempt_at = None
                published += 1
        return published

    async def _others_first_unsent(
        self, session: AsyncSession, rows: Sequence[Any]
    ) -> dict[str, int]:
        """Return, per routing key of `rows`, the position of its first unsent row not in `rows`.

        Another relay's locked rows are skipped by SKIP LOCKED but still visible here, so of two
        relays holding rows of one key, each publishes only its rows before the other's first:
        the earlier rows are published and marked before the later ones are looked at again.
        """
        if not rows:
            return {}
        m = self.model
        result = await session.execute(
            select(m.routing_key, func.min(m.position))
            .where(
                m.published_at.is_(None),
                m.routing_key.in_({row.routing_key for row in rows}),
                m.position.not_in([row.position for row in rows]),
            )
            .group_by(m.routing_key)
        )
        return {row[0]: row[1] for row in result.all()}

    async def purge_published(self) -> int:
        """Delete rows published longer ago than the retention; return how many."""
        m = self.model
        async with self.sessionmaker() as session, session.begin():
            result = await session.execute(
                delete(m).where(m.published_at < utcnow() - self.retention)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def wake(self) -> None:
        """Ask the relay to look for new rows now."""
        self._wake.set()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._listen_retry_at = loop.time() + self.listen_interval_s
        try:
            listener = await asyncpg.connect(asyncpg_dsn(self.database_url), timeout=5)
            await listener.add_listener(notify_channel(self.schema), lambda *_: self._wake.set())
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            if not self._listen_lost:
                log.warning("outbox LISTEN unavailable, polling only: %s", exc)
            self._listen_lost = True
            self._listener = None
            return
        listener.add_termination_listener(self._on_listen_lost)
        self._listener = listener
        if self._listen_lost:
            log.info("outbox LISTEN re-established on %s", notify_channel(self.schema))
            self._listen_lost = False
        self._wake.set()  # whatever was queued while we were deaf is published now

    def _on_listen_lost(self, _conn: object) -> None:
        if self._closing:
            return
        log.warning("outbox LISTEN connection lost, polling until it is back")
        self._listen_lost = True
        self._listen_retry_at = 0.0
        self._wake.set()

    async def _ensure_listening(self) -> None:
        """Open LISTEN again if it is down, at most every `listen_interval_s`."""
        if self.listening or asyncio.get_running_loop().time() < self._listen_retry_at:
            return
        if self._listener is not None:
            with contextlib.suppress(Exception):
                self._listener.terminate()
            self._listener = None
        await self._listen()

    async def run(self) -> None:
        """Publish forever: on NOTIFY, and every poll interval as a safety net."""
        self._closing = False
        await self._listen()
        backoff = self.poll_interval_s
        cycles = 0
        while True:
            try:
                await self._ensure_listening()
                published = await self.publish_batch()
                backoff = self.poll_interval_s
                cycles += 1
                if cycles % 1000 == 0:
                    await self.purge_published()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay cycle failed: %s", exc)
                published = 0
                backoff = min(backoff * 2, 10.0)
            if published >= self.batch_size:
                continue  # more rows are probably waiting
            self._wake.clear()
            # While deaf to NOTIFY, look again soon: LISTEN is retried on the next cycle.
            wait = backoff if self.listening else min(backoff, self.listen_interval_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    def start(self) -> None:
        """Run the relay in a background task."""
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self.schema}")

    async def stop(self) -> None:
        """Stop the background task and close the LISTEN connection."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            await listener.close()
