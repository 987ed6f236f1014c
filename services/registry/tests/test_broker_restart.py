"""A RabbitMQ restart loses nothing: the API keeps serving and the outbox delivers afterwards."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import httpx
import pytest

from modelyard_common.contracts import EVENTS_EXCHANGE
from modelyard_common.testing import create_ok, wait_for
from modelyard_registry.settings import RegistrySettings

Headers = dict[str, str]


async def _rabbitmqctl(*args: str) -> None:
    process = await asyncio.create_subprocess_exec("rabbitmqctl", "-q", *args)
    assert await process.wait() == 0, f"rabbitmqctl {' '.join(args)} failed"


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
) -> None:
    await _rabbitmqctl("stop_app")
    try:
        created = await create_ok(client, "/v1/models", model_body, editor)
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker"].startswith("unavailable")
    finally:
        await _rabbitmqctl("start_app")

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
