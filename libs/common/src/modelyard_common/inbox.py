"""Idempotent consumers: an event id is applied once, in the same transaction as its effects."""

from __future__ import annotations

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
