"""Devices: one-time tokens, rotation, revocation, heartbeats, online/offline, filters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from deployer_testkit import Tenant, eventually
from fastapi import FastAPI
from sqlalchemy import select, text

from modelyard_deployer.db import Device
from modelyard_deployer.device_tokens import hash_token
from modelyard_deployer.devices import repository
from modelyard_deployer.devices.schemas import DeviceStatus
from modelyard_deployer.devices.service import status_of
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
    assert DeployerSettings().offline_after() == timedelta(seconds=2 * 30 + 5)
    rules = DeployerSettings(heartbeat_interval_s=10, heartbeat_grace_s=2)
    assert rules.offline_after() == timedelta(seconds=22)
    # A device's declared interval counts, within the bound.
    assert rules.offline_after(rules.declared_interval(4)) == timedelta(seconds=10)
    assert rules.declared_interval(86_400) == 600
    assert rules.declared_interval(None) is None
    # An explicit silence overrides the rule (the tests' 3 s).
    overridden = DeployerSettings(heartbeat_interval_s=10, device_offline_after_s=3)
    assert overridden.offline_after() == timedelta(seconds=3)
    assert overridden.offline_after(4) == timedelta(seconds=3)


async def test_each_device_reads_offline_after_two_of_its_declared_intervals(
    tenant: Tenant, app: FastAPI
) -> None:
    """The interval a heartbeat declares is stored (bounded) and both status readings use it:
    the device view (Python) and the `status` filter (SQL) agree for every silence tried."""
    fast = await tenant.register_device("beats-10s", connect=False)
    liar = await tenant.register_device("beats-daily", connect=False)
    old = await tenant.register_device("says-nothing", connect=False)
    await fast.heartbeat(agent_version="fast", interval_s=10)
    await liar.heartbeat(agent_version="liar", interval_s=86_400)
    await old.heartbeat(agent_version="old")
    # Not a number of seconds: the heartbeat is dropped whole (as other out-of-bounds ones).
    for bad in ("10", -1, 0, True, [10]):
        await old.heartbeat(agent_version=f"bad-{bad}", interval_s=bad)
    await old.heartbeat(agent_version="old-again")

    async def applied() -> dict[str, str] | None:
        listed = (await tenant.client.get("/v1/devices", headers=tenant.admin)).json()["items"]
        versions = {d["name"]: d["agent_version"] for d in listed}
        return versions if versions.get("says-nothing") == "old-again" else None

    assert await eventually(applied) == {
        "beats-10s": "fast",
        "beats-daily": "liar",
        "says-nothing": "old-again",
    }
    ids = {fast.id: "beats-10s", liar.id: "beats-daily", old.id: "says-nothing"}
    async with app.state.sessionmaker() as session:
        stored = dict(
            (
                await session.execute(
                    text(
                        "SELECT id, heartbeat_interval_s FROM deployer.devices WHERE id = ANY(:ids)"
                    ),
                    {"ids": list(ids)},
                )
            ).all()
        )
    assert {ids[k]: v for k, v in stored.items()} == {
        "beats-10s": 10.0,
        "beats-daily": 600.0,  # the bound: HEARTBEAT_INTERVAL_MAX_S
        "says-nothing": None,  # the deployer's HEARTBEAT_INTERVAL_S stands in
    }

    # The rule without the tests' 3 s override: 2 x interval + 5 s.
    rules = DeployerSettings(heartbeat_interval_s=30, heartbeat_grace_s=5)
    # The bound lowered after the intervals were stored: the stored 600 s counts as 300.
    lowered = DeployerSettings(
        heartbeat_interval_s=30, heartbeat_grace_s=5, heartbeat_interval_max_s=300
    )
    expected = [
        (24, rules, {"beats-10s": "online", "beats-daily": "online", "says-nothing": "online"}),
        (26, rules, {"beats-10s": "offline", "beats-daily": "online", "says-nothing": "online"}),
        (66, rules, {"beats-10s": "offline", "beats-daily": "online", "says-nothing": "offline"}),
        (
            606,
            lowered,
            {
                "beats-10s": "offline",
                "beats-daily": "offline",
                "says-nothing": "offline",
            },
        ),
        (
            1206,
            rules,
            {
                "beats-10s": "offline",
                "beats-daily": "offline",
                "says-nothing": "offline",
            },
        ),
    ]
    for silent_s, judged_by, statuses in expected:
        async with app.state.sessionmaker() as session, session.begin():
            await session.execute(
                text(
                    "UPDATE deployer.devices SET last_seen_at = now() - make_interval(secs => :s) "
                    "WHERE id = ANY(:ids)"
                ),
                {"s": silent_s, "ids": list(ids)},
            )
        async with app.state.sessionmaker() as session:
            rows = (await session.scalars(select(Device).where(Device.id.in_(ids)))).all()
            shown = {row.name: status_of(row, judged_by).value for row in rows}
            filtered = {}
            for status in (DeviceStatus.online, DeviceStatus.offline):
                stmt = repository.list_statement(
                    workspace=tenant.workspace,
                    labels={},
                    status=status,
                    name=None,
                    settings=judged_by,
                )
                for row in (await session.scalars(stmt)).all():
                    filtered[row.name] = status.value
        assert shown == statuses, f"silent {silent_s} s"
        assert filtered == statuses, f"silent {silent_s} s"
