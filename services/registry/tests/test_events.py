"""Events: every change reaches RabbitMQ through the outbox; none lost, duplicates applied once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Integer, String, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modelyard_common.contracts import EVENTS_EXCHANGE
from modelyard_common.db import schema_metadata
from modelyard_common.events import CloudEvent
from modelyard_common.inbox import ProcessedEventMixin, idempotent_handler
from modelyard_common.messaging import Binding, Broker
from modelyard_common.outbox import OutboxRelay
from modelyard_registry.db import OutboxEvent
from modelyard_registry.settings import RegistrySettings
from modelyard_testkit.testing import EventCapture, create_ok, wait_for

Headers = dict[str, str]


async def test_every_change_emits_its_event(
    client: httpx.AsyncClient,
    editor: Headers,
    admin: Headers,
    events: EventCapture,
    model_body: dict[str, Any],
    system_body: dict[str, Any],
) -> None:
    model = await create_ok(client, "/v1/models", model_body, editor)
    system = await create_ok(client, "/v1/systems", system_body, editor)
    mid, sid = model["id"], system["id"]
    patched = await client.patch(
        f"/v1/models/{mid}", json={"provider": "p"}, headers={**editor, "If-Match": model["etag"]}
    )
    assert patched.status_code == 200
    link = await create_ok(
        client, f"/v1/systems/{sid}/models", {"model_id": mid, "description_of_use": "u"}, editor
    )
    await client.patch(
        f"/v1/systems/{sid}/models/{mid}",
        json={"description_of_use": "v"},
        headers={**editor, "If-Match": link["etag"]},
    )
    await client.delete(f"/v1/systems/{sid}/models/{mid}", headers=editor)
    await client.post(f"/v1/models/{mid}/archive", headers=editor)
    await client.post(f"/v1/models/{mid}/unarchive", headers=editor)
    await client.post(f"/v1/systems/{sid}/archive", headers=editor)
    await client.delete(f"/v1/models/{mid}", headers=admin)
    await client.delete(f"/v1/systems/{sid}", headers=admin)

    expected = [
        ("registry.model.created", mid),
        ("registry.system.created", sid),
        ("registry.model.updated", mid),
        ("registry.link.linked", sid),
        ("registry.link.updated", sid),
        ("registry.link.unlinked", sid),
        ("registry.model.archived", mid),
        ("registry.model.unarchived", mid),
        ("registry.system.archived", sid),
        ("registry.model.deleted", mid),
        ("registry.system.deleted", sid),
    ]
    await events.wait(count=len(expected), timeout=15)
    mine = [e for e in events.events if e["subject"] in {mid, sid}]
    assert [(e["type"], e["subject"]) for e in mine] == expected
    first = mine[0]
    assert first["specversion"] == "1.0"
    assert first["source"] == "modelyard/registry"
    assert first["data"]["name"] == "fraud-detector"
    assert first["data"]["workspace"] == model["workspace"]
    assert len({e["id"] for e in mine}) == len(mine)


async def _unsent(sessionmaker: async_sessionmaker[AsyncSession], event_ids: set[str]) -> int:
    async with sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.event_id.in_(event_ids), OutboxEvent.published_at.is_(None))
            )
            or 0
        )


async def test_event_committed_while_relay_is_down_is_published_after_restart(
    app: FastAPI,
    client: httpx.AsyncClient,
    editor: Headers,
    events: EventCapture,
    settings: RegistrySettings,
    model_body: dict[str, Any],
) -> None:
    relay: OutboxRelay = app.state.relay
    await relay.stop()  # the relay dies between the commit and the publish
    try:
        model = await create_ok(client, "/v1/models", model_body, editor)
        await asyncio.sleep(0.5)
        assert events.of(subject=model["id"]) == []
        async with app.state.sessionmaker() as session:
            row = await session.scalar(
                select(OutboxEvent).where(OutboxEvent.payload["subject"].astext == model["id"])
            )
        assert row is not None
        assert row.published_at is None
    finally:
        relay.start()  # a restarted relay finds the unsent row
    delivered = await events.wait(subject=model["id"], timeout=10)
    assert delivered[0]["type"] == "registry.model.created"

    # The relay marks the row in the transaction it published from: the mark commits just
    # after the broker has the event (and a loaded machine may deliver it first).
    async def marked() -> bool:
        return await _unsent(app.state.sessionmaker, {row.event_id}) == 0

    await wait_for(marked, timeout=10)


class _TestBase(DeclarativeBase):
    metadata = schema_metadata("registry_consumer_test")


class _Processed(ProcessedEventMixin, _TestBase):
    __tablename__ = "processed_events"


class _Applied(_TestBase):
    __tablename__ = "applied"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(200))


class _Crash(Exception):
    pass


async def test_duplicate_delivery_after_relay_crash_is_applied_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    editor: Headers,
    settings: RegistrySettings,
    model_body: dict[str, Any],
) -> None:
    engine = app.state.engine
    async with engine.begin() as conn:
        await conn.execute(text('CREATE SCHEMA IF NOT EXISTS "registry_consumer_test"'))
        await conn.run_sync(_TestBase.metadata.create_all)
    sessionmaker: async_sessionmaker[AsyncSession] = app.state.sessionmaker

    async def apply(session: AsyncSession, event: CloudEvent) -> None:
        session.add(_Applied(event_id=event.id))

    consumer_broker = Broker(settings.amqp_url)
    await consumer_broker.connect()
    queue = f"test-registry-consumer-{uuid.uuid4().hex[:8]}"
    handler = idempotent_handler(sessionmaker, _Processed, queue, apply)
    deliveries: list[str] = []

    async def counting(event: CloudEvent) -> None:
        deliveries.append(event.id)
        await handler(event)

    consumer = await consumer_broker.consume(
        queue, [Binding(EVENTS_EXCHANGE, "registry.model.created")], counting
    )

    live_relay: OutboxRelay = app.state.relay
    await live_relay.stop()
    published: list[str] = []

    def crash_after_publish(event: CloudEvent) -> None:
        published.append(event.id)
        raise _Crash("relay killed after publish, before marking the row sent")

    crashing = OutboxRelay(
        sessionmaker,
        OutboxEvent,
        app.state.broker,
        database_url=settings.database_url,
        after_publish=crash_after_publish,
    )
    try:
        model = await create_ok(client, "/v1/models", model_body, editor)
        with pytest.raises(_Crash):
            await crashing.publish_batch()
        assert len(published) == 1
        event_id = published[0]
        # The crash rolled back the mark: the row is still unsent, so it is published again.
        assert await _unsent(sessionmaker, {event_id}) == 1
    finally:
        live_relay.start()

    async def applied_rows() -> list[str]:
        async with sessionmaker() as session:
            return list(
                (
                    await session.scalars(
                        select(_Applied.event_id).where(_Applied.event_id == event_id)
                    )
                ).all()
            )

    await wait_for(lambda: _unsent_zero(sessionmaker, event_id), timeout=10)
    await wait_for(applied_rows, timeout=10)

    async def delivered_twice() -> bool:
        return deliveries.count(event_id) >= 2

    await wait_for(delivered_twice, timeout=10)
    await asyncio.sleep(0.3)  # the second copy's transaction has finished
    assert await applied_rows() == [event_id]
    assert model["id"]
    await consumer.stop()
    await consumer_broker.close()


async def _unsent_zero(sessionmaker: async_sessionmaker[AsyncSession], event_id: str) -> bool:
    return await _unsent(sessionmaker, {event_id}) == 0


async def test_a_refused_event_waits_alone_and_keeps_order_for_its_routing_key(
    app: FastAPI, settings: RegistrySettings
) -> None:
    """A device command to a queue that does not exist is refused (mandatory publish)."""
    from modelyard_common.contracts import DEVICES_EXCHANGE
    from modelyard_common.events import new_event
    from modelyard_common.outbox import enqueue

    sessionmaker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    live_relay: OutboxRelay = app.state.relay
    await live_relay.stop()
    relay = OutboxRelay(
        sessionmaker, OutboxEvent, app.state.broker, database_url=settings.database_url
    )
    missing = f"device.missing-{uuid.uuid4().hex[:8]}"
    refused_1 = new_event(type="test.command", source="test", data={"n": 1})
    refused_2 = new_event(type="test.command", source="test", data={"n": 2})
    fine = new_event(type="registry.test.fine", source="test", data={})
    try:
        async with EventCapture(settings.amqp_url, "registry.test.#") as capture:
            async with sessionmaker() as session, session.begin():
                await enqueue(
                    session, OutboxEvent, refused_1, exchange=DEVICES_EXCHANGE, routing_key=missing
                )
                await enqueue(
                    session, OutboxEvent, refused_2, exchange=DEVICES_EXCHANGE, routing_key=missing
                )
                await enqueue(session, OutboxEvent, fine)
            assert await relay.publish_batch() == 1
            await capture.wait(type="registry.test.fine")
            assert await _unsent(sessionmaker, {refused_1.id, refused_2.id}) == 2
            async with sessionmaker() as session:
                first = await session.scalar(
                    select(OutboxEvent).where(OutboxEvent.event_id == refused_1.id)
                )
                second = await session.scalar(
                    select(OutboxEvent).where(OutboxEvent.event_id == refused_2.id)
                )
            assert first is not None
            assert first.attempts == 1
            assert first.next_attempt_at is not None
            assert second is not None
            assert second.attempts == 0  # it never overtakes the first
    finally:
        async with sessionmaker() as session, session.begin():
            await session.execute(
                OutboxEvent.__table__.delete().where(
                    OutboxEvent.event_id.in_([refused_1.id, refused_2.id])
                )
            )
        live_relay.start()


async def test_two_relays_publish_each_event_exactly_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    editor: Headers,
    events: EventCapture,
    settings: RegistrySettings,
    model_body: dict[str, Any],
) -> None:
    """Two replicas' relays share the outbox with SKIP LOCKED: nothing twice, nothing lost."""
    live_relay: OutboxRelay = app.state.relay
    await live_relay.stop()
    relays = [
        OutboxRelay(
            app.state.sessionmaker,
            OutboxEvent,
            app.state.broker,
            database_url=settings.database_url,
            batch_size=5,
        )
        for _ in range(2)
    ]
    try:
        created = await asyncio.gather(
            *(
                create_ok(client, "/v1/models", {**model_body, "name": f"m{i}"}, editor)
                for i in range(40)
            )
        )
        ids = {m["id"] for m in created}
        for relay in relays:
            relay.start()
        await events.wait(type="registry.model.created", count=40, timeout=20)
        await asyncio.sleep(0.5)  # time for any duplicate to show up
        mine = [e for e in events.of(type="registry.model.created") if e["subject"] in ids]
        assert sorted(e["subject"] for e in mine) == sorted(ids)
        assert len({e["id"] for e in mine}) == len(mine) == 40
    finally:
        for relay in relays:
            await relay.stop()
        live_relay.start()


class _SlowBroker:
    """A relay's broker that takes its time over each publish (a replica on a busy node)."""

    def __init__(self, broker: Broker, delay_s: float) -> None:
        self._broker = broker
        self._delay_s = delay_s
        self._link = asyncio.Lock()  # one message at a time on the slow link, in order
        self.started = asyncio.Event()

    @property
    def is_connected(self) -> bool:
        return self._broker.is_connected

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        self.started.set()
        async with self._link:
            await asyncio.sleep(self._delay_s)
            await self._broker.publish(*args, **kwargs)


async def test_two_relays_keep_the_order_of_each_routing_key(
    app: FastAPI,
    client: httpx.AsyncClient,
    editor: Headers,
    events: EventCapture,
    settings: RegistrySettings,
    model_body: dict[str, Any],
) -> None:
    """A slow relay holds the first rows of a key; a fast one must not overtake it."""
    live_relay: OutboxRelay = app.state.relay
    await live_relay.stop()
    slow_broker = _SlowBroker(app.state.broker, 0.15)
    slow, fast = (
        OutboxRelay(
            app.state.sessionmaker,
            OutboxEvent,
            broker,  # type: ignore[arg-type]
            database_url=settings.database_url,
            batch_size=5,
            poll_interval_s=0.05,
        )
        for broker in (slow_broker, app.state.broker)
    )
    try:
        for i in range(20):  # one after another: the outbox order is the creation order
            await create_ok(client, "/v1/models", {**model_body, "name": f"ordered-{i}"}, editor)
        async with app.state.sessionmaker() as session:
            expected = list(
                await session.scalars(
                    select(OutboxEvent.event_id)
                    .where(OutboxEvent.published_at.is_(None))
                    .order_by(OutboxEvent.position)
                )
            )
        assert len(expected) >= 20
        slow.start()
        await asyncio.wait_for(slow_broker.started.wait(), 10)  # it holds the first batch
        fast.start()
        await events.wait(type="registry.model.created", count=20, timeout=30)
        await wait_for(lambda: _all_published(app.state.sessionmaker), timeout=30)
        seen = [e["id"] for e in events.of(type="registry.model.created") if e["id"] in expected]
        assert seen == [i for i in expected if i in seen]
        assert len(seen) == len(set(seen)) == 20
    finally:
        await slow.stop()
        await fast.stop()
        live_relay.start()


async def _all_published(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    async with sessionmaker() as session:
        unsent = await session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
        )
    return unsent == 0
