"""The outbox relay's LISTEN connection comes back after a PostgreSQL restart (and says so).

Runs a private PostgreSQL (so it can be restarted) and the machine's RabbitMQ (test vhost).
The relay polls only every 30 s here, so an event delivered within seconds after the restart
proves the relay is woken by NOTIFY again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from modelyard_common.events import new_event
from modelyard_common.messaging import Broker
from modelyard_common.outbox import OutboxMixin, OutboxRelay, enqueue
from modelyard_testkit.servers import PrivatePostgres
from modelyard_testkit.testing import TEST_AMQP_URL, EventCapture, ensure_vhost


class _Base(DeclarativeBase):
    pass


class _Outbox(OutboxMixin, _Base):
    __tablename__ = "outbox"
    __table_args__ = {"schema": "listen_test"}  # noqa: RUF012


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().start()
    yield server
    server.close()


async def _outbox_world(
    postgres: PrivatePostgres,
) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession], Broker]:
    """Return an engine with the outbox table, its sessions and a connected broker."""
    await asyncio.to_thread(ensure_vhost)
    engine = create_async_engine(postgres.admin_url, pool_pre_ping=True)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA IF NOT EXISTS listen_test"))
        await conn.run_sync(_Base.metadata.create_all)
    broker = Broker(TEST_AMQP_URL)
    await broker.connect()
    return engine, async_sessionmaker(engine, expire_on_commit=False), broker


async def test_relay_listens_again_after_a_postgres_restart(
    postgres: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="modelyard.outbox")
    engine, sessions, broker = await _outbox_world(postgres)
    url = postgres.admin_url
    routing_key = f"test.listen.{uuid.uuid4().hex[:8]}"
    relay = OutboxRelay(sessions, _Outbox, broker, database_url=url, poll_interval_s=30.0)
    relay.listen_interval_s = 0.5

    async def emit() -> str:
        event = new_event(type=routing_key, source="test", data={"n": 1})
        async with sessions() as session, session.begin():
            await enqueue(session, _Outbox, event, routing_key=routing_key)
        return event.id

    async def delivered(capture: EventCapture, event_id: str, within: float) -> float:
        started = time.monotonic()
        while not any(e["id"] == event_id for e in capture.events):
            assert time.monotonic() - started < within, "event not delivered in time"
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    try:
        async with EventCapture(TEST_AMQP_URL, routing_key) as capture:
            relay.start()
            await asyncio.sleep(0.5)
            await delivered(capture, await emit(), within=10.0)  # NOTIFY wakes it (poll: 30 s)

            await asyncio.to_thread(postgres.restart)
            # The pool reconnects on first use; the relay must reopen LISTEN on its own.
            started = time.monotonic()
            while not any("re-established" in r.getMessage() for r in caplog.records):
                assert time.monotonic() - started < 15, "LISTEN never came back"
                await asyncio.sleep(0.1)
            assert relay.listening
            # Two events after the restart, each within seconds although the poll is 30 s (10 s
            # leaves a loaded CI machine room and still tells a NOTIFY from a poll).
            for _ in range(2):
                await delivered(capture, await emit(), within=10.0)
    finally:
        await relay.stop()
        await broker.close()
        await engine.dispose()
    messages = [r.getMessage() for r in caplog.records if r.name == "modelyard.outbox"]
    assert any("LISTEN connection lost" in m for m in messages)


async def test_a_notify_during_a_batch_wakes_the_next_one(postgres: PrivatePostgres) -> None:
    """A row committed while a batch runs (after its SELECT) is published at once, not a poll later.

    The relay once cleared its wake-up flag after each batch, dropping a NOTIFY that arrived
    during it: the row then waited for the next poll (30 s here).
    """
    engine, sessions, broker = await _outbox_world(postgres)
    url = postgres.admin_url
    routing_key = f"test.during.{uuid.uuid4().hex[:8]}"
    relay = OutboxRelay(sessions, _Outbox, broker, database_url=url, poll_interval_s=30.0)
    late: list[str] = []
    publish_batch = relay.publish_batch

    async def batch_then_a_late_row() -> int:
        published = await publish_batch()
        if not late:  # once: a row (and its NOTIFY) lands after this batch has looked
            event = new_event(type=routing_key, source="test", data={"late": True})
            async with sessions() as session, session.begin():
                await enqueue(session, _Outbox, event, routing_key=routing_key)
            late.append(event.id)
            await asyncio.sleep(0.3)  # the NOTIFY reaches the relay before the batch ends
        return published

    relay.publish_batch = batch_then_a_late_row  # type: ignore[method-assign]
    try:
        async with EventCapture(TEST_AMQP_URL, routing_key) as capture:
            relay.start()
            started = time.monotonic()
            while not late or not any(e["id"] == late[0] for e in capture.events):
                assert time.monotonic() - started < 10.0, "the late row waited for the poll"
                await asyncio.sleep(0.05)
    finally:
        await relay.stop()
        await broker.close()
        await engine.dispose()
