"""Devices: one-time tokens, rotation, revocation, heartbeats, online/offline, filters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from deployer_testkit import Tenant, eventually
from fastapi import FastAPI
from sqlalchemy import text

from modelyard_deployer.device_tokens import hash_token
from modelyard_deployer.settings import DeployerSettings


async def test_token_is_shown_once_and_stored_hashed(tenant: Tenant, app: FastAPI) -> None:
    created = await tenant.client.post(
        "/v1/devices", json={"name": "cam-1", "labels": {"site": "a"}}, headers=tenant.admin
    )
    body = created.json()

    assert created.status_code == 201
    assert body["token"].startswith("mydev_")
    assert body["status"] == "offline"
    fetched = await tenant.client.get(f"/v1/devices/{body['id']}", headers=tenant.admin)
    assert "token" not in fetched.json()
    assert fetched.headers["etag"] == body["etag"]
    async with app.state.sessionmaker() as session:
        stored = await session.scalar(
            text("SELECT token_hash FROM deployer.devices WHERE id = :id"), {"id": body["id"]}
        )
    assert stored == hash_token(body["token"])
    assert body["token"] not in str(stored)


async def test_heartbeat_brings_a_device_online_then_silence_offline(tenant: Tenant) -> None:
    device = await tenant.register_device("press-1", {"site": "plant-1"}, connect=False)

    await device.heartbeat(agent_version="1.2.3", arch="arm64", ram_mb=4096, docker_version="27.1")

    async def online() -> dict[str, object] | None:
        body = (await tenant.client.get(f"/v1/devices/{device.id}", headers=tenant.admin)).json()
        return body if body["status"] == "online" else None

    body = await eventually(online)
    assert body["agent_version"] == "1.2.3"
    assert body["capabilities"]["arch"] == "arm64"
    assert body["advertise_host"] == "10.0.0.7"
    listed = await tenant.client.get(
        "/v1/devices", params={"status": "online"}, headers=tenant.admin
    )
    assert [d["id"] for d in listed.json()["items"]] == [str(device.id)]
    # Test settings: offline after 3 s without a heartbeat.
    await asyncio.sleep(3.2)
    offline = await tenant.client.get(
        "/v1/devices", params={"status": "offline"}, headers=tenant.admin
    )
    assert [d["id"] for d in offline.json()["items"]] == [str(device.id)]


async def test_list_filters_by_label_and_name(tenant: Tenant) -> None:
    await tenant.register_device("north-1", {"site": "north", "tier": "gpu"}, connect=False)
    await tenant.register_device("north-2", {"site": "north"}, connect=False)
    await tenant.register_device("south-1", {"site": "south", "tier": "gpu"}, connect=False)

    async def names(**params: str | int | list[str]) -> list[str]:
        response = await tenant.client.get("/v1/devices", params=params, headers=tenant.admin)
        assert response.status_code == 200, response.text
        return [d["name"] for d in response.json()["items"]]

    assert await names(label="site=north") == ["north-1", "north-2"]
    assert await names(label=["site=north", "tier=gpu"]) == ["north-1"]
    assert await names(name="south") == ["south-1"]
    assert await names(sort="-name", limit=2) == ["south-1", "north-2"]
    bad = await tenant.client.get("/v1/devices", params={"label": "nokey"}, headers=tenant.admin)
    assert bad.status_code == 422


async def test_rotate_and_revoke_stop_old_tokens(tenant: Tenant) -> None:
    device = await tenant.register_device("rotating", connect=False)
    version = await tenant.new_version()
    await tenant.deploy(version["id"], [device])
    url = version["artifact_url"]
    assert (await device.download(url)).status_code == 200

    rotated = await tenant.client.post(f"/v1/devices/{device.id}/token", headers=tenant.admin)

    assert rotated.status_code == 200
    assert (await device.download(url)).status_code == 401
    device.token = rotated.json()["token"]
    assert (await device.download(url)).status_code == 200
    revoked = await tenant.client.delete(f"/v1/devices/{device.id}", headers=tenant.admin)
    assert revoked.status_code == 204
    assert (await device.download(url)).status_code == 401
    listed = await tenant.client.get("/v1/devices", headers=tenant.admin)
    assert listed.json()["items"] == []
    shown = await tenant.client.get(f"/v1/devices/{device.id}", headers=tenant.admin)
    assert shown.json()["status"] == "revoked"


async def test_patch_device_needs_current_etag(tenant: Tenant) -> None:
    device = await tenant.register_device("patchable", connect=False)
    current = (await tenant.client.get(f"/v1/devices/{device.id}", headers=tenant.admin)).json()

    missing = await tenant.client.patch(
        f"/v1/devices/{device.id}", json={"labels": {"a": "b"}}, headers=tenant.admin
    )
    updated = await tenant.client.patch(
        f"/v1/devices/{device.id}",
        json={"labels": {"a": "b"}},
        headers={**tenant.admin, "If-Match": current["etag"]},
    )
    stale = await tenant.client.patch(
        f"/v1/devices/{device.id}",
        json={"name": "late"},
        headers={**tenant.admin, "If-Match": current["etag"]},
    )

    assert missing.status_code == 428
    assert updated.status_code == 200
    assert updated.json()["labels"] == {"a": "b"}
    assert stale.status_code == 412


async def test_viewers_cannot_register_devices(tenant: Tenant) -> None:
    response = await tenant.client.post(
        "/v1/devices", json={"name": "x"}, headers=tenant.headers("bob", ("viewer",))
    )
    assert response.status_code == 403


async def test_heartbeat_uses_server_time_but_ignores_a_stale_backlog(tenant: Tenant) -> None:
    skewed = await tenant.register_device("clock-behind", connect=False)
    stale = await tenant.register_device("dead-since", connect=False)

    # Test settings: offline after 3 s. A clock 2.5 s behind still counts as seen when received
    # (by its own time it would be offline 0.5 s later); a heartbeat 10 minutes old does not.
    await skewed.heartbeat(sent_at=datetime.now(UTC) - timedelta(seconds=2.5))
    await stale.heartbeat(sent_at=datetime.now(UTC) - timedelta(minutes=10), arch="x86_64")

    async def both_applied() -> list[dict[str, object]] | None:
        response = await tenant.client.get("/v1/devices", headers=tenant.admin)
        items: list[dict[str, object]] = response.json()["items"]
        return items if all(d["agent_version"] for d in items) else None

    await eventually(both_applied)
    await asyncio.sleep(0.8)
    response = await tenant.client.get("/v1/devices", headers=tenant.admin)
    devices = {d["name"]: d for d in response.json()["items"]}
    assert devices["clock-behind"]["status"] == "online"
    assert devices["dead-since"]["status"] == "offline"
    assert devices["dead-since"]["capabilities"] == {"arch": "x86_64"}


def test_offline_after_two_heartbeat_intervals_and_the_grace() -> None:
    assert DeployerSettings().offline_after == timedelta(seconds=2 * 30 + 5)
    assert DeployerSettings(
        heartbeat_interval_s=10, heartbeat_grace_s=2
    ).offline_after == timedelta(seconds=22)
    # An explicit silence overrides the rule (the tests' 3 s).
    assert DeployerSettings(
        heartbeat_interval_s=10, device_offline_after_s=3
    ).offline_after == timedelta(seconds=3)
