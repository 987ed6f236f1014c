"""`outbox_ddl` builds the table `OutboxMixin` maps, idempotently: a relay publishes through it."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from modelyard_common.events import new_event
from modelyard_common.messaging import Broker
from modelyard_common.outbox import OutboxMixin, OutboxRelay, enqueue, outbox_ddl
from modelyard_testkit.testing import (
    TEST_ADMIN_DB_URL,
    TEST_AMQP_URL,
    EventCapture,
    ensure_vhost,
    recreate_database,
)

SCHEMA = "ddl_test"


class _Base(DeclarativeBase):
    pass


class _Outbox(OutboxMixin, _Base):
    __tablename__ = "outbox"
    __table_args__ = {"schema": SCHEMA}  # noqa: RUF012


async def test_outbox_ddl_matches_the_mixin_and_carries_events() -> None:
    ensure_vhost()
    url = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_test_outbox_ddl")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
            for _ in range(2):  # a migration run twice changes nothing
                for statement in outbox_ddl(SCHEMA):
                    await conn.execute(text(statement))
            rows = await conn.execute(
                text(
                    "SELECT column_name, is_nullable FROM information_schema.columns"
                    " WHERE table_schema = :s AND table_name = 'outbox'"
                ),
                {"s": SCHEMA},
            )
            columns = {name: nullable == "YES" for name, nullable in rows}
            indexes = await conn.scalars(
                text("SELECT indexname FROM pg_indexes WHERE schemaname = :s"), {"s": SCHEMA}
            )
            index_names = set(indexes)
        mapped = {c.name: bool(c.nullable) for c in _Outbox.__table__.columns}
        assert columns == mapped
        assert f"ix_{SCHEMA}_outbox_published_at" in index_names

        sessions = async_sessionmaker(engine, expire_on_commit=False)
        routing_key = f"test.ddl.{uuid.uuid4().hex[:8]}"
        event = new_event(type=routing_key, source="test", data={"n": 1})
        async with sessions() as session, session.begin():
            await enqueue(session, _Outbox, event)
        broker = Broker(TEST_AMQP_URL)
        await broker.connect()
        try:
            async with EventCapture(TEST_AMQP_URL, routing_key) as capture:
                relay = OutboxRelay(sessions, _Outbox, broker, database_url=url)
                assert await relay.publish_batch() == 1
                [delivered] = await capture.wait(type=routing_key)
            assert delivered["id"] == event.id
        finally:
            await broker.close()
    finally:
        await engine.dispose()
