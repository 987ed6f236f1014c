"""Per-deployment health from heartbeats: stored once per heartbeat, shown on deployment reads,
and bounded (what a device may not say about its own deployments, nor any about others')."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
from deployer_testkit import AMQP_URL, DeviceStandIn, Tenant, eventually
from fastapi import FastAPI
from sqlalchemy import event, text

from modelyard_common.contracts import DEVICE_HEARTBEAT, EVENTS_EXCHANGE
from modelyard_common.device_identity import broker_username, device_amqp_url
from modelyard_common.events import new_event


def health(**fields: Any) -> dict[str, Any]:
    """Return a health entry as the agent sends it, with sound defaults."""
    now = datetime.now(UTC).isoformat()
    return {
        "probe_ok": True,
        "probe_status": 200,
        "probe_error": None,
        "probed_at": now,
        "restarts": 1,
        "memory_mb": 84.2,
        "memory_limit_mb": 512.0,
        "cpu_percent": 3.5,
        "sampled_at": now,
        **fields,
    }


def listed(deployment_id: str | uuid.UUID, entry: Any) -> dict[str, Any]:
    return {
        "deployment_id": str(deployment_id),
        "generation": 1,
        "state": "running",
        "desired_state": "running",
        "health": entry,
    }


async def heartbeat_raw(device: DeviceStandIn, body: bytes) -> None:
    """Publish a heartbeat's raw JSON as the device (for what JSON libraries never write)."""
    connection = await aio_pika.connect(device_amqp_url(AMQP_URL, device.id, device.token))
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                body=body,
                content_type="application/cloudevents+json",
                user_id=broker_username(device.id),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=DEVICE_HEARTBEAT,
        )


async def seen_as(tenant: Tenant, device: DeviceStandIn, agent_version: str) -> None:
    """Wait until the deployer applied the heartbeat that carried `agent_version`."""

    async def applied() -> bool:
        body = (await tenant.client.get(f"/v1/devices/{device.id}", headers=tenant.admin)).json()
        return bool(body["agent_version"] == agent_version)

    await eventually(applied)


async def two_deployments(tenant: Tenant) -> tuple[DeviceStandIn, DeviceStandIn, str, str]:
    version = await tenant.new_version()
    first = await tenant.register_device("health-1", connect=False)
    second = await tenant.register_device("health-2", connect=False)
    made = {d["device_id"]: d["id"] for d in await tenant.deploy(version["id"], [first, second])}
    return first, second, made[str(first.id)], made[str(second.id)]


async def test_health_shows_on_deployment_and_device_reads(tenant: Tenant) -> None:
    first, _, mine, other = await two_deployments(tenant)
    before = await tenant.deployment(mine)
    assert before["health"] is None

    await first.heartbeat(
        agent_version="beat-1",
        deployments=[listed(mine, health(probe_status=204, restarts=2, memory_mb=99.5))],
    )
    await seen_as(tenant, first, "beat-1")

    shown = (await tenant.deployment(mine))["health"]
    assert shown["probe_ok"] is True
    assert shown["probe_status"] == 204
    assert shown["restarts"] == 2
    assert shown["memory_mb"] == 99.5
    assert shown["memory_limit_mb"] == 512.0
    assert shown["cpu_percent"] == 3.5
    assert shown["reported_at"] is not None
    assert (await tenant.deployment(other))["health"] is None
    # The lists show it too: all deployments, and the device's own.
    everything = await tenant.client.get("/v1/deployments", headers=tenant.admin)
    by_id = {d["id"]: d for d in everything.json()["items"]}
    assert by_id[mine]["health"] == shown
    assert by_id[other]["health"] is None
    on_device = await tenant.client.get(f"/v1/devices/{first.id}/deployments", headers=tenant.admin)
    assert [d["health"] for d in on_device.json()["items"]] == [shown]
    # Health is no edit: the deployment's ETag stays.
    assert (await tenant.deployment(mine))["etag"] == before["etag"]

    # A later heartbeat replaces it, a field it cannot tell reads null.
    await first.heartbeat(
        agent_version="beat-2",
        deployments=[listed(mine, health(probe_ok=False, probe_status=None, cpu_percent=None))],
    )
    await seen_as(tenant, first, "beat-2")
    again = (await tenant.deployment(mine))["health"]
    assert again["probe_ok"] is False
    assert again["probe_status"] is None
    assert again["cpu_percent"] is None
    assert again["reported_at"] >= shown["reported_at"]


async def test_a_device_says_nothing_about_others_nor_out_of_bounds(
    tenant: Tenant, app: FastAPI
) -> None:
    first, second, mine, other = await two_deployments(tenant)
    await first.heartbeat(agent_version="sound", deployments=[listed(mine, health())])
    await seen_as(tenant, first, "sound")
    sound = (await tenant.deployment(mine))["health"]

    future = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    await first.heartbeat(
        agent_version="lies",
        deployments=[
            # Another device's deployment, and one that does not exist.
            listed(other, health(memory_mb=1.0)),
            listed(uuid.uuid4(), health(memory_mb=2.0)),
            # Its own, but each out of bounds: negative, oversized, mistyped, implausible.
            listed(mine, health(restarts=-1)),
            listed(mine, health(probe_error="x" * 201)),
            listed(mine, health(probe_status=9999)),
            listed(mine, health(memory_mb="12")),
            listed(mine, health(probe_ok="yes")),
            listed(mine, health(probed_at=future)),
            listed(mine, health(probed_at="2026-01-01T00:00:00")),  # no zone
            listed(mine, health(cpu_percent=1e12)),
            listed(mine, "not an object"),
            listed("not-a-uuid", health()),
        ],
    )
    await seen_as(tenant, first, "lies")
    assert (await tenant.deployment(mine))["health"] == sound
    assert (await tenant.deployment(other))["health"] is None

    # NaN and Infinity are no JSON a library writes, but a device may send them.
    for number in (b"NaN", b"Infinity", b"-Infinity"):
        beat = new_event(
            type=DEVICE_HEARTBEAT,
            source=f"modelyard-agent/{first.id}",
            data={
                "device_id": str(first.id),
                "agent_version": f"nan-{number.decode()}",
                "capabilities": {},
                "sent_at": datetime.now(UTC).isoformat(),
                "deployments": [listed(mine, health(memory_mb=123456.75))],
            },
        )
        body = beat.to_bytes()
        assert body.count(b"123456.75") == 1
        await heartbeat_raw(first, body.replace(b"123456.75", number))
        await seen_as(tenant, first, f"nan-{number.decode()}")
        assert (await tenant.deployment(mine))["health"] == sound

    # The other device's own heartbeat is what sets its health.
    await second.heartbeat(agent_version="own", deployments=[listed(other, health(restarts=7))])
    await seen_as(tenant, second, "own")
    assert (await tenant.deployment(other))["health"]["restarts"] == 7
    async with app.state.sessionmaker() as session:
        stored = await session.scalar(
            text(
                "SELECT count(*) FROM deployer.deployment_health h "
                "JOIN deployer.deployments d ON d.id = h.deployment_id WHERE d.workspace = :ws"
            ),
            {"ws": tenant.workspace},
        )
    assert stored == 2


async def test_one_statement_per_heartbeat_however_many_deployments(
    tenant: Tenant, app: FastAPI
) -> None:
    first, _, mine, _ = await two_deployments(tenant)
    writes: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "deployment_health" in statement and statement.lstrip().startswith("INSERT"):
            writes.append(statement)

    engine = app.state.sessionmaker.kw["bind"].sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        # Its own deployment and 499 more it claims: one statement writes what is its own.
        entries = [listed(mine, health(restarts=3))] + [
            listed(uuid.uuid4(), health()) for _ in range(499)
        ]
        await first.heartbeat(agent_version="many", deployments=entries)
        await seen_as(tenant, first, "many")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(writes) == 1
    assert (await tenant.deployment(mine))["health"]["restarts"] == 3
