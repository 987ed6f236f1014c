"""Groups bound to a registry model follow the deployer's endpoint events (over RabbitMQ)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import openai
from gateway_testkit import Admin, FakeBackend, GatewayServer, eventually
from sqlalchemy import func, select

from modelyard_common.contracts import ENDPOINT_GONE, ENDPOINT_READY, EVENTS_EXCHANGE
from modelyard_common.db import make_engine
from modelyard_common.events import CloudEvent, new_event
from modelyard_common.messaging import Binding, Broker
from modelyard_gateway.crypto import SecretBox
from modelyard_gateway.db import EndpointSequence, ProcessedEvent
from modelyard_gateway.endpoints.consumer import QUEUE
from modelyard_testkit.testing import wait_for


async def endpoint_publisher(gateway: GatewayServer) -> Broker:
    """Return a broker connection to publish endpoint events with.

    The gateway's queue is declared with the consumer's own arguments, so no event is lost if
    the consumer is still starting.
    """
    broker = Broker(gateway.settings.amqp_url)
    await broker.connect()
    await broker.declare_queue(
        QUEUE,
        [Binding(EVENTS_EXCHANGE, ENDPOINT_READY), Binding(EVENTS_EXCHANGE, ENDPOINT_GONE)],
        delivery_limit=gateway.settings.consumer_delivery_limit,
    )
    return broker


async def test_endpoint_ready_joins_bound_groups_once_and_gone_leaves(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    backend = backends("deployed")
    model_id = uuid.uuid4()
    group = (
        await admin.http.post(
            "/v1/groups", json={"name": "bound", "registry_model_id": str(model_id)}
        )
    ).json()
    key = await admin.key()

    broker = await endpoint_publisher(gateway)
    deployment_id = uuid.uuid4()
    data: dict[str, Any] = {
        "deployment_id": str(deployment_id),
        "model_id": str(model_id),
        "version_id": str(uuid.uuid4()),
        "device_id": str(uuid.uuid4()),
        "base_url": f"http://127.0.0.1:{backend.port}",
    }
    ready = new_event(type=ENDPOINT_READY, source="/deployer", data=data)

    async def members() -> list[str]:
        found: list[str] = (await admin.http.get(f"/v1/groups/{group['id']}")).json()[
            "instance_ids"
        ]
        return found

    async def publish(event: CloudEvent) -> None:
        await broker.publish(event, exchange=EVENTS_EXCHANGE, routing_key=event.type)

    await publish(ready)
    await publish(ready)  # a redelivered event acts once
    seen: list[list[str]] = []

    async def poll() -> bool:
        seen.append(await members())
        return len(seen[-1]) == 1

    await wait_for(poll, timeout=10)
    await eventually(
        lambda: bool(gateway.runtime.catalog.snapshot.groups[(admin.workspace, "bound")].instances)
    )
    c = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    raw = await c.chat.completions.with_raw_response.create(
        model="bound", messages=[{"role": "user", "content": "x"}]
    )
    assert raw.headers["x-modelyard-instance"] == f"deployment-{deployment_id}"
    assert backend.requests[-1]["model"] == "bound"

    await publish(new_event(type=ENDPOINT_GONE, source="/deployer", data=data))

    async def emptied() -> bool:
        return await members() == []

    await wait_for(emptied, timeout=10)
    assert len(seen[-1]) == 1
    await c.close()
    await broker.close()


async def test_bound_group_orders_deployments_by_label_priority_and_workspace(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    model_id = uuid.uuid4()
    fallback = (
        await admin.http.post(
            "/v1/instances",
            json={
                "name": "cloud-fallback",
                "kind": "local",
                "host": "127.0.0.1",
                "port": backends("fallback").port,
                "upstream_model": "m",
            },
        )
    ).json()
    group = (
        await admin.http.post(
            "/v1/groups",
            json={
                "name": "by-site",
                "registry_model_id": str(model_id),
                "instance_ids": [fallback["id"]],
                "endpoint_priority": {"label": "site", "values": ["berlin", "paris"]},
            },
        )
    ).json()
    assert group["endpoint_priority"] == {"label": "site", "values": ["berlin", "paris"]}

    broker = await endpoint_publisher(gateway)
    deployments: dict[str, uuid.UUID] = {}
    # Arrival order is deliberately not the priority order; one event names another workspace.
    for site, workspace in (
        ("lyon", admin.workspace),
        ("paris", admin.workspace),
        ("berlin", admin.workspace),
        ("berlin", "someone-else"),
    ):
        deployment_id = uuid.uuid4()
        deployments[f"{site}/{workspace}"] = deployment_id
        event = new_event(
            type=ENDPOINT_READY,
            source="/deployer",
            data={
                "deployment_id": str(deployment_id),
                "model_id": str(model_id),
                "version_id": str(uuid.uuid4()),
                "device_id": str(uuid.uuid4()),
                "base_url": f"http://127.0.0.1:{backends(site).port}",
                "device_labels": {"site": site},
                "workspace": workspace,
            },
        )
        await broker.publish(event, exchange=EVENTS_EXCHANGE, routing_key=event.type)

    async def names() -> list[str]:
        ids = (await admin.http.get(f"/v1/groups/{group['id']}")).json()["instance_ids"]
        found = []
        for instance_id in ids:
            found.append((await admin.http.get(f"/v1/instances/{instance_id}")).json()["name"])
        return found

    async def all_joined() -> bool:
        return len(await names()) == 4

    await wait_for(all_joined, timeout=10)
    ws = admin.workspace
    assert await names() == [
        f"deployment-{deployments[f'berlin/{ws}']}",
        f"deployment-{deployments[f'paris/{ws}']}",
        f"deployment-{deployments[f'lyon/{ws}']}",
        "cloud-fallback",
    ]
    # A new priority reorders what is already there.
    current = await admin.http.get(f"/v1/groups/{group['id']}")
    patched = await admin.http.patch(
        f"/v1/groups/{group['id']}",
        json={"endpoint_priority": {"label": "site", "values": ["lyon"]}},
        headers={"If-Match": current.headers["etag"]},
    )
    assert patched.status_code == 200, patched.text
    assert (await names())[0] == f"deployment-{deployments[f'lyon/{ws}']}"
    final = await names()
    assert final[-1] == "cloud-fallback"
    assert len(final) == 4  # the other workspace's deployment never joined
    await broker.close()


async def test_endpoint_events_of_a_deployment_apply_in_order_with_its_credential(
    gateway: GatewayServer, admin: Admin, backends: Callable[[str], FakeBackend]
) -> None:
    """A version switch is gone(2)-then-ready(3); delivered as ready(3)-then-gone(2), the group
    keeps the new instance. The ingress credential arrives sealed and is presented upstream."""
    backend = backends("switched")
    model_id = uuid.uuid4()
    group = (
        await admin.http.post(
            "/v1/groups", json={"name": "in-order", "registry_model_id": str(model_id)}
        )
    ).json()
    key = await admin.key()
    broker = await endpoint_publisher(gateway)
    deployment_id = uuid.uuid4()
    credential = "myin_" + uuid.uuid4().hex
    sealed = SecretBox(gateway.settings.ingress_seal_key).seal(credential)

    def event(kind: str, sequence: int) -> CloudEvent:
        return new_event(
            type=kind,
            source="/deployer",
            data={
                "deployment_id": str(deployment_id),
                "model_id": str(model_id),
                "version_id": str(uuid.uuid4()),
                "device_id": str(uuid.uuid4()),
                "base_url": f"http://127.0.0.1:{backend.port}",
                "workspace": admin.workspace,
                "sequence": sequence,
                "ingress_token_sealed": sealed if kind == ENDPOINT_READY else None,
            },
        )

    delivered = [event(ENDPOINT_READY, 3), event(ENDPOINT_GONE, 2), event(ENDPOINT_READY, 1)]
    for late in delivered:
        await broker.publish(late, exchange=EVENTS_EXCHANGE, routing_key=late.type)
    engine = make_engine(gateway.settings.database_url, pool_size=1)

    async def all_consumed() -> bool:
        async with engine.connect() as conn:
            done = await conn.scalar(
                select(func.count())
                .select_from(ProcessedEvent)
                .where(ProcessedEvent.event_id.in_([e.id for e in delivered]))
            )
            stored = await conn.scalar(
                select(EndpointSequence.sequence).where(
                    EndpointSequence.deployment_id == deployment_id
                )
            )
        return done == 3 and stored == 3

    await wait_for(all_consumed, timeout=10)
    await engine.dispose()
    members = (await admin.http.get(f"/v1/groups/{group['id']}")).json()["instance_ids"]
    assert len(members) == 1
    instance = (await admin.http.get(f"/v1/instances/{members[0]}")).json()
    assert instance["has_token"] is True
    assert credential not in json.dumps(instance)
    await eventually(
        lambda: bool(
            gateway.runtime.catalog.snapshot.groups[(admin.workspace, "in-order")].instances
        )
    )
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    await client.chat.completions.create(
        model="in-order", messages=[{"role": "user", "content": "x"}]
    )
    assert backend.headers[-1]["Authorization"] == f"Bearer {credential}"
    await client.close()
    await broker.close()
