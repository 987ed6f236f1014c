"""Idempotent consumers: an event id is applied once, in the same transaction as its effects."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import DateTime, String, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from modelyard_common.events import CloudEvent
from modelyard_common.messaging import EventHandler


class ProcessedEventMixin:
    """Columns of a service's `processed_events` table (consumer, event id)."""

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


SessionHandler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]


def idempotent_handler(
    sessionmaker: async_sessionmaker[AsyncSession],
    processed_model: type[ProcessedEventMixin],
    consumer: str,
    handle: SessionHandler,
) -> EventHandler:
    """Return a handler that applies `handle` once per event id, committing before the ack."""

    async def handler(event: CloudEvent) -> None:
        async with sessionmaker() as session, session.begin():
            claimed = await session.scalar(
                insert(processed_model)
                .values(consumer=consumer, event_id=event.id)
                .on_conflict_do_nothing()
                .returning(processed_model.event_id)
            )
            if claimed is None:
                return  # seen before: acting again would apply it twice
            await handle(session, event)

    return handler


class KeyedSerializer:
    """Runs events that share a key one after another, in the order they arrived.

    aio-pika hands each delivery to its own task, so two reports of one deployment could be
    applied in either order; a late one would then only be history. Tasks start in delivery
    order and `asyncio.Lock` is FIFO, so taking the key's lock first keeps the queue's order,
    while events of different keys still run concurrently.
    """

    def __init__(self, handler: EventHandler, key: Callable[[CloudEvent], str]) -> None:
        self.handler = handler
        self.key = key
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    async def __call__(self, event: CloudEvent) -> None:
        key = self.key(event)
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                await self.handler(event)
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key], self._locks[key]


def processed_events_ddl(schema: str) -> list[str]:
    """Return the idempotent DDL of a service's `processed_events` table, for its migrations."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {schema}.processed_events (
            consumer varchar(100) NOT NULL,
            event_id varchar(200) NOT NULL,
            processed_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_processed_events PRIMARY KEY (consumer, event_id)
        )""",
    ]
