"""A RabbitMQ restart loses nothing: the API keeps serving and the outbox delivers afterwards.

The broker restarted is a private node this module starts, never the machine's shared one.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aio_pika
import httpx
import pytest
from asgi_lifespan import LifespanManager

from modelyard_common.contracts import EVENTS_EXCHANGE
from modelyard_registry.app import create_app
from modelyard_registry.cli import migrate
from modelyard_registry.settings import RegistrySettings
from modelyard_testkit.servers import PrivateRabbit
from modelyard_testkit.testing import TEST_ADMIN_DB_URL, create_ok, recreate_database, wait_for

Headers = dict[str, str]


@pytest.fixture(scope="module")
def rabbit() -> Iterator[PrivateRabbit]:
    """A RabbitMQ node of this module's own, so the test may stop and start it."""
    node = PrivateRabbit().start()
    yield node
    node.close()


@pytest.fixture(scope="module")
async def settings(settings: RegistrySettings, rabbit: PrivateRabbit) -> RegistrySettings:
    """The suite's settings on the private broker and a database of this module's own.

    Its own database, because the suite's registry may still be running: its relay would
    publish this module's outbox rows to the shared broker, where no one here is listening.
    """
    url = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_test_registry_restart")
    await asyncio.to_thread(migrate, url)
    return settings.model_copy(update={"amqp_url": rabbit.url, "database_url": url})


@pytest.fixture
async def client(settings: RegistrySettings) -> AsyncIterator[httpx.AsyncClient]:
    """A registry of its own on the private broker, over ASGI."""
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=60):
        await application.state.runtime.wait_broker()
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://registry") as c:
            yield c


@pytest.fixture
async def durable_queue(settings: RegistrySettings) -> AsyncIterator[str]:
    """A durable queue that keeps what the exchange routes to it across the restart."""
    name = f"test-restart-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect_robust(settings.amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    await queue.bind(exchange, routing_key="registry.model.created")
    await connection.close()
    yield name
    async with await aio_pika.connect_robust(settings.amqp_url) as cleanup:
        await (await cleanup.channel()).queue_delete(name)


async def _drain(settings: RegistrySettings, queue_name: str) -> list[dict[str, Any]]:
    try:
        connection = await aio_pika.connect(settings.amqp_url, timeout=2)
    except Exception:
        return []  # the broker is still starting
    async with connection:
        queue = await (await connection.channel()).get_queue(queue_name)
        found = []
        while (message := await queue.get(fail=False)) is not None:
            await message.ack()
            found.append(json.loads(message.body))
        return found


async def test_broker_restart_loses_no_event(
    client: httpx.AsyncClient,
    editor: Headers,
    settings: RegistrySettings,
    durable_queue: str,
    model_body: dict[str, Any],
    rabbit: PrivateRabbit,
) -> None:
    await asyncio.to_thread(rabbit.stop)
    try:
        created = await create_ok(client, "/v1/models", model_body, editor)
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker"].startswith("unavailable")
    finally:
        await asyncio.to_thread(rabbit.start)

    received: list[dict[str, Any]] = []

    async def delivered() -> bool:
        received.extend(await _drain(settings, durable_queue))
        return any(e["subject"] == created["id"] for e in received)

    await wait_for(delivered, timeout=45, interval=0.5)
    assert [e["type"] for e in received if e["subject"] == created["id"]] == [
        "registry.model.created"
    ]

    async def ready_again() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await wait_for(ready_again, timeout=30, interval=0.5)
