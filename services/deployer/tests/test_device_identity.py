"""Devices are separate, untrusted machines: each speaks to the broker as itself only.

Real RabbitMQ (per-device logins made through its management API), real deployer over ASGI.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import aio_pika
import httpx
import pytest
from aio_pika.exceptions import AMQPError, ChannelClosed, ProbableAuthenticationError
from cryptography.fernet import Fernet
from deployer_testkit import OPENAI_MANIFEST, DeviceStandIn, EventTap, Tenant, eventually
from fastapi import FastAPI
from modelyard_testkit.testing import TEST_AMQP_URL
from prometheus_client import REGISTRY
from sqlalchemy import text

from modelyard_common.contracts import DEPLOYMENT_REPORTED, ENDPOINT_GONE, ENDPOINT_READY
from modelyard_common.device_identity import (
    broker_username,
    device_amqp_url,
    ingress_token,
    token_hash,
)
from modelyard_common.events import CloudEvent, new_event
from modelyard_deployer.settings import DeployerSettings

LIFECYCLE = ["downloading", "verifying", "building", "starting", "running"]


def rejected(reason: str, kind: str = "report") -> float:
    value = REGISTRY.get_sample_value(
        "modelyard_deployer_device_messages_rejected_total", {"kind": kind, "reason": reason}
    )
    return value or 0.0


async def device_connection(device: DeviceStandIn) -> aio_pika.abc.AbstractConnection:
    return await aio_pika.connect(device_amqp_url(TEST_AMQP_URL, device.id, device.token))


def report_message(device_id: uuid.UUID, deployment_id: str, *, user_id: str) -> aio_pika.Message:
    return aio_pika.Message(
        body=forged_event(device_id, deployment_id).to_bytes(), user_id=user_id, delivery_mode=2
    )


async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    return None


async def test_a_device_cannot_consume_another_devices_queue(tenant: Tenant) -> None:
    victim = await tenant.register_device("victim", connect=False)
    intruder = await tenant.register_device("intruder", connect=False)
    connection = await device_connection(intruder)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"device.{victim.id}", ensure=False)
        with pytest.raises(ChannelClosed, match="ACCESS_REFUSED"):
            await queue.consume(ignore)
        # Its own queue it may read.
        channel = await connection.channel()
        own = await channel.declare_queue(f"device.{intruder.id}", passive=True)
        tag = await own.consume(ignore)
        await own.cancel(tag)


async def test_a_device_may_publish_only_its_reports_and_heartbeats(tenant: Tenant) -> None:
    device = await tenant.register_device("narrow", connect=False)
    user = broker_username(device.id)
    connection = await device_connection(device)
    async with connection:
        for exchange, routing_key in [
            ("aimodels.events", "registry.model.created"),
            ("aimodels.events", "deployer.deployment.endpoint_ready"),
            ("aimodels.devices", f"device.{device.id}"),
            ("", f"device.{device.id}"),
        ]:
            channel = await connection.channel()
            target = (
                channel.default_exchange
                if not exchange
                else await channel.get_exchange(exchange, ensure=False)
            )
            with pytest.raises(ChannelClosed, match="ACCESS_REFUSED"):
                await target.publish(aio_pika.Message(b"{}", user_id=user), routing_key=routing_key)
        # Declaring anything is refused too (no configure permission).
        channel = await connection.channel()
        with pytest.raises(ChannelClosed, match="ACCESS_REFUSED"):
            await channel.declare_queue(f"device.{device.id}.mine", durable=True)


async def test_a_report_about_another_device_is_dropped_and_recorded(
    tenant: Tenant, app: FastAPI
) -> None:
    version = await tenant.new_version()
    victim = await tenant.register_device("victim")
    intruder = await tenant.register_device("intruder", connect=False)
    (deployment,) = await tenant.deploy(version["id"], [victim])
    await victim.next_command()
    await victim.report(deployment["id"], "downloading")
    await tenant.wait_state(deployment["id"], "downloading")
    before = rejected("wrong_sender")

    connection = await device_connection(intruder)
    async with connection:
        channel = await connection.channel()
        events = await channel.get_exchange("aimodels.events", ensure=False)
        # Claiming to be the victim in the message changes nothing: the broker-checked sender
        # is the intruder.
        await events.publish(
            report_message(victim.id, deployment["id"], user_id=broker_username(intruder.id)),
            routing_key=DEPLOYMENT_REPORTED,
        )
        # Claiming the victim's login as `user_id` is refused by the broker itself.
        channel = await connection.channel()
        events = await channel.get_exchange("aimodels.events", ensure=False)
        with pytest.raises(ChannelClosed, match="PRECONDITION_FAILED"):
            await events.publish(
                report_message(victim.id, deployment["id"], user_id=broker_username(victim.id)),
                routing_key=DEPLOYMENT_REPORTED,
            )
    # The platform's own login is not a device either.
    platform = forged_event(victim.id, deployment["id"])
    await tenant.broker.publish(
        platform, exchange="aimodels.events", routing_key=DEPLOYMENT_REPORTED
    )

    async def both_done() -> bool:
        async with app.state.sessionmaker() as session:
            seen = await session.scalar(
                text("SELECT count(*) FROM deployer.processed_events WHERE event_id = :id"),
                {"id": platform.id},
            )
        return bool(seen) and rejected("wrong_sender") - before == 2

    await eventually(both_done)  # reports of one deployment are applied in order
    # A device of the workspace leaves a note in the history; a login that is no device of
    # this workspace (here the platform's own) writes nothing there.
    entries = await tenant.history(deployment["id"], source="deployer")
    entries = [e for e in entries if "refused" in str(e["message"])]
    assert [e["actor"] for e in entries] == [broker_username(intruder.id)]
    assert all(e["applied"] is False for e in entries)
    assert (await tenant.deployment(deployment["id"]))["state"] == "downloading"


def forged_event(device_id: uuid.UUID, deployment_id: str) -> CloudEvent:
    return new_event(
        type=DEPLOYMENT_REPORTED,
        source="forger",
        subject=deployment_id,
        data={
            "deployment_id": deployment_id,
            "device_id": str(device_id),
            "generation": 1,
            "sequence": 100,
            "state": "failed",
            "reported_at": datetime.now(UTC).isoformat(),
        },
    )


async def test_revoked_device_is_disconnected_refused_and_its_deployments_removed(
    tenant: Tenant, tap: EventTap
) -> None:
    version = await tenant.new_version(manifest=OPENAI_MANIFEST)
    device = await tenant.register_device("doomed")
    (deployment,) = await tenant.deploy(version["id"], [device])
    await device.next_command()
    for state in LIFECYCLE:
        await device.report(deployment["id"], state)
    await tenant.wait_state(deployment["id"], "running")
    connection = await device_connection(device)
    closed = asyncio.Event()
    connection.close_callbacks.add(lambda *_: closed.set())
    # Let the management API see the connection before the revoke (its stats lag), as a
    # long-running agent's connection would be.
    await asyncio.sleep(0)

    started = asyncio.get_running_loop().time()
    revoked = await tenant.client.delete(f"/v1/devices/{device.id}", headers=tenant.admin)
    assert revoked.status_code == 204
    await asyncio.wait_for(closed.wait(), timeout=15)
    disconnect_s = asyncio.get_running_loop().time() - started
    assert disconnect_s < 15
    print(f"revoked device disconnected after {disconnect_s:.2f}s")

    with pytest.raises((ProbableAuthenticationError, AMQPError, ConnectionError)):
        await device_connection(device)
    download = await device.download(f"/v1/versions/{version['id']}/artifact")
    assert download.status_code == 401
    current = await tenant.deployment(deployment["id"])
    assert (current["state"], current["desired_state"]) == ("removed", "removed")
    history = await tenant.history(deployment["id"], source="deployer")
    assert any("device revoked" in e["message"] for e in history)

    async def withdrawn() -> list[object]:
        return tap.of(deployment["id"], ENDPOINT_GONE)

    assert await eventually(withdrawn)
    assert len(tap.of(deployment["id"], ENDPOINT_READY)) == 1


async def test_rotating_the_token_rekeys_the_broker_login(tenant: Tenant) -> None:
    device = await tenant.register_device("rotating", connect=False)
    old = DeviceStandIn(
        device_id=device.id, token=device.token, client=tenant.client, broker=tenant.broker
    )
    rotated = await tenant.client.post(f"/v1/devices/{device.id}/token", headers=tenant.admin)
    assert rotated.status_code == 200
    device.token = rotated.json()["token"]
    with pytest.raises((ProbableAuthenticationError, AMQPError, ConnectionError)):
        await device_connection(old)
    connection = await device_connection(device)
    await connection.close()


async def test_new_agent_epoch_resyncs_sequences_and_resends_desired_state(
    tenant: Tenant,
) -> None:
    version = await tenant.new_version()
    device = await tenant.register_device("wiped")
    (deployment,) = await tenant.deploy(version["id"], [device])
    first = await device.next_command()
    epoch_one = "1700000000000-aaaaaaaaaaaa"
    for state in LIFECYCLE:
        await device.report(deployment["id"], state, epoch=epoch_one)
    await tenant.wait_state(deployment["id"], "running")

    # The device lost its data dir: a new epoch, sequences from 1 again. Its clock is not
    # trusted: this epoch's timestamp is older than the first one's, it is still the new one.
    epoch_two = "0000000001000-bbbbbbbbbbbb"
    device.sequences.clear()
    await device.heartbeat(epoch=epoch_two)
    resent = await device.next_command()
    assert (resent.deployment_id, resent.generation) == (first.deployment_id, first.generation)
    assert resent.desired_state.value == "running"
    await device.report(deployment["id"], "downloading", epoch=epoch_two)
    await tenant.wait_state(deployment["id"], "downloading")
    await device.report(deployment["id"], "running", epoch=epoch_two)
    await tenant.wait_state(deployment["id"], "running")
    # A late report of the old epoch changes nothing.
    await device.report(deployment["id"], "failed", epoch=epoch_one, sequence=50)
    await device.report(deployment["id"], "running", epoch=epoch_two)
    history = await tenant.history(deployment["id"])
    assert any("new agent epoch" in e["message"] for e in history)
    assert (await tenant.deployment(deployment["id"]))["state"] == "running"
    sequences = [e["sequence"] for e in history if e["source"] == "agent"]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)


async def test_heartbeat_without_a_deployment_gets_it_resent(tenant: Tenant, app: FastAPI) -> None:
    version = await tenant.new_version()
    device = await tenant.register_device("forgetful")
    (deployment,) = await tenant.deploy(version["id"], [device])
    command = await device.next_command()
    # Past the grace period, a heartbeat that does not list the deployment gets it again.
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE deployer.deployments SET updated_at = now() - interval '1 minute' "
                "WHERE id = :id"
            ),
            {"id": deployment["id"]},
        )
    await device.heartbeat(deployments=[{"deployment_id": deployment["id"], "generation": 0}])
    again = await device.next_command(within=10)
    assert again.generation == command.generation
    # Listed at its generation: nothing more is sent.
    await device.heartbeat(
        deployments=[{"deployment_id": deployment["id"], "generation": command.generation}]
    )
    with pytest.raises(TimeoutError):
        await device.next_command(within=2)


async def test_provisioning_token_registers_devices_then_refuses_clearly(
    tenant: Tenant, app: FastAPI
) -> None:
    bad = await tenant.client.post(
        "/v1/provisioning-tokens", json={"name": "", "max_uses": 0}, headers=tenant.admin
    )
    assert bad.status_code == 422
    too_long = await tenant.client.post(
        "/v1/provisioning-tokens",
        json={"name": "forever", "expires_in_s": 10**9},
        headers=tenant.admin,
    )
    assert too_long.status_code == 422
    assert [e["field"] for e in too_long.json()["errors"]] == ["expires_in_s"]
    made = await tenant.client.post(
        "/v1/provisioning-tokens",
        json={"name": "rollout", "max_uses": 1, "labels": {"site": "plant-1"}},
        headers=tenant.admin,
    )
    assert made.status_code == 201, made.text
    secret = made.json()["token"]
    listed = await tenant.client.get("/v1/provisioning-tokens", headers=tenant.admin)
    assert secret not in listed.text

    def register(token: str, name: str = "fresh") -> httpx.Request:
        return tenant.client.build_request(
            "POST",
            "/v1/devices/register",
            # Repeating the token's labels is fine; adding or changing one is refused.
            json={"name": name, "labels": {"site": "plant-1"}, "advertise_host": "10.1.2.3"},
            headers={"Authorization": f"Bearer {token}"},
        )

    first = await tenant.client.send(register(secret))
    assert first.status_code == 201, first.text
    device = first.json()
    assert device["labels"] == {"site": "plant-1"}
    assert device["token"].startswith("mydev_")
    assert device["advertise_host"] == "10.1.2.3"
    stand_in = DeviceStandIn(
        device_id=uuid.UUID(device["id"]),
        token=device["token"],
        client=tenant.client,
        broker=tenant.broker,
    )
    connection = await device_connection(stand_in)
    await connection.close()
    shown = await tenant.client.get(f"/v1/devices/{device['id']}", headers=tenant.admin)
    assert shown.status_code == 200  # registered in the token's workspace

    exhausted = await tenant.client.send(register(secret, "second"))
    assert exhausted.status_code == 403
    assert exhausted.headers["content-type"] == "application/problem+json"
    assert "registered its 1 device" in exhausted.json()["detail"]

    wrong = await tenant.client.send(register("myprov_" + "x" * 43))
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "The provisioning token is unknown."
    missing = await tenant.client.post("/v1/devices/register", json={"name": "x"})
    assert missing.status_code == 401

    short = await tenant.client.post(
        "/v1/provisioning-tokens",
        json={"name": "short", "expires_in_s": 60, "max_uses": 5},
        headers=tenant.admin,
    )
    expired_secret = short.json()["token"]
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE deployer.provisioning_tokens SET expires_at = now() - interval '1 second' "
                "WHERE id = :id"
            ),
            {"id": short.json()["id"]},
        )
    expired = await tenant.client.send(register(expired_secret, "late"))
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]
    devices = await tenant.client.get("/v1/devices", headers=tenant.admin)
    assert [d["name"] for d in devices.json()["items"]] == ["fresh"]


async def test_rotating_the_token_reannounces_endpoints_with_the_new_credential(
    tenant: Tenant, tap: EventTap, settings: DeployerSettings
) -> None:
    version = await tenant.new_version(manifest=OPENAI_MANIFEST)
    device = await tenant.register_device("rotating-llm")
    (deployment,) = await tenant.deploy(version["id"], [device])
    await device.next_command()
    for state in LIFECYCLE:
        await device.report(deployment["id"], state)
    await tenant.wait_state(deployment["id"], "running")

    def credential(event: CloudEvent) -> str:
        sealed = event.data["ingress_token_sealed"]
        return Fernet(settings.ingress_seal_key.encode()).decrypt(sealed.encode()).decode()

    async def announced(count: int) -> list[CloudEvent]:
        events = tap.of(deployment["id"], ENDPOINT_READY)
        return events if len(events) == count else []

    (first,) = await eventually(lambda: announced(1))
    assert credential(first) == ingress_token(token_hash(device.token), device.id)
    rotated = await tenant.client.post(f"/v1/devices/{device.id}/token", headers=tenant.admin)
    new_token = rotated.json()["token"]
    second = (await eventually(lambda: announced(2)))[1]
    assert credential(second) == ingress_token(token_hash(new_token), device.id)
    assert credential(second) != credential(first)
    assert second.data["sequence"] > first.data["sequence"]
