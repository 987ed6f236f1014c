"""Commands are accepted while RabbitMQ is away, and reach the device once it is back.

The deployer here talks to a private RabbitMQ node that the test stops and starts again, and
keeps its rows in a database of its own: the suite's deployer may still run, and its relay would
publish this test's outbox rows to the shared broker. Before issue 9 every command answered 503
during the outage.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from asgi_lifespan import LifespanManager
from deployer_testkit import RegistryStandIn, Tenant
from modelyard_testkit.servers import PrivateRabbit
from modelyard_testkit.testing import TEST_ADMIN_DB_URL, recreate_database

from modelyard_common.contracts import DEVICES_EXCHANGE, DeviceCommand
from modelyard_common.events import CloudEvent
from modelyard_common.messaging import Binding, Broker
from modelyard_deployer.app import create_app
from modelyard_deployer.cli import migrate
from modelyard_deployer.settings import DeployerSettings


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rabbit() -> AsyncIterator[PrivateRabbit]:
    server = await asyncio.to_thread(lambda: PrivateRabbit().start())
    yield server
    await asyncio.to_thread(server.close)


async def _wait(check: object, within: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, what
        await asyncio.sleep(0.1)


async def test_commands_are_accepted_during_a_broker_outage_and_delivered_after(
    settings: DeployerSettings, registry: RegistryStandIn, rabbit: PrivateRabbit
) -> None:
    database_url = await recreate_database(TEST_ADMIN_DB_URL, "modelyard_test_deployer_outage")
    own = settings.model_copy(
        update={"amqp_url": rabbit.url, "database_url": database_url, "consume_events": False}
    )
    await asyncio.to_thread(migrate, own)
    app = create_app(own)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        runtime = app.state.runtime
        await runtime.wait_broker(timeout=30)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://deployer.test", timeout=30
        ) as client:
            tenant = Tenant(
                client=client,
                registry=registry,
                broker=runtime.broker,
                workspace=f"ws-{uuid.uuid4().hex[:10]}",
            )
            tenant.model_id = tenant.add_model("fraud-detector")
            version = await tenant.new_version()
            first = await tenant.register_device("one", connect=False)
            second = await tenant.register_device("two", connect=False)
            [deployment] = await tenant.deploy(version["id"], [first])

            await asyncio.to_thread(rabbit.stop)
            await _wait(lambda: not runtime.broker.is_connected, 20, "broker still connected")

            # Every command while the broker is away: accepted, not 503.
            statuses = []
            for action in ("stop", "start", "restart"):
                r = await client.post(
                    f"/v1/deployments/{deployment['id']}/{action}", headers=tenant.admin
                )
                statuses.append((action, r.status_code, r.text[:200]))
            r = await client.post(
                "/v1/deployments",
                json={"version_id": version["id"], "device_ids": [str(second.id)]},
                headers=tenant.admin,
            )
            statuses.append(("deploy", r.status_code, r.text[:200]))
            second_deployment = r.json()["items"][0]["id"] if r.status_code == 201 else None
            r = await client.delete(f"/v1/deployments/{deployment['id']}", headers=tenant.admin)
            statuses.append(("remove", r.status_code, r.text[:200]))
            assert [(a, s) for a, s, _ in statuses] == [
                ("stop", 202),
                ("start", 202),
                ("restart", 202),
                ("deploy", 201),
                ("remove", 202),
            ], statuses

            await asyncio.to_thread(rabbit.start)
            # A redelivery (a publish whose confirm the stopping broker never sent) carries the
            # same event id; the device acts on each id once, as the agent does.
            received: dict[uuid.UUID, list[DeviceCommand]] = {first.id: [], second.id: []}
            seen: set[str] = set()
            consumer = Broker(rabbit.url, prefetch=10)
            await consumer.connect()
            try:
                for device in (first, second):

                    async def on_command(
                        event: CloudEvent, device_id: uuid.UUID = device.id
                    ) -> None:
                        if event.id not in seen:
                            seen.add(event.id)
                            received[device_id].append(DeviceCommand.model_validate(event.data))

                    await consumer.consume(
                        device.queue, [Binding(DEVICES_EXCHANGE, device.queue)], on_command
                    )
                await _wait(
                    lambda: len(received[first.id]) >= 5 and len(received[second.id]) >= 1,
                    30,
                    f"commands missing after the broker came back: {received}",
                )
            finally:
                await consumer.close()
            actions = [c.action.value for c in received[first.id]]
            assert actions == ["deploy", "stop", "start", "restart", "remove"]
            assert [c.generation for c in received[first.id]] == [1, 2, 3, 4, 5]
            assert [str(c.deployment_id) for c in received[second.id]] == [second_deployment]
