"""The policy gate before each wave of a rollout (issue 23): a model blocked while a rollout
runs holds it before its next wave, with the reason, and nothing reaches the next devices.

Device stand-ins speak the agent's protocol over the real broker; the rollout engine runs in
the app's runtime as in production.
"""

from __future__ import annotations

import uuid
from typing import Any

from deployer_testkit import (
    DeviceStandIn,
    Tenant,
    choose_gate,
    eventually,
    model_data,
    projected,
    registry_says,
)
from fastapi import FastAPI


async def rollout_of(tenant: Tenant, rollout_id: str) -> dict[str, Any]:
    response = await tenant.client.get(f"/v1/rollouts/{rollout_id}", headers=tenant.admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def online(tenant: Tenant, devices: list[DeviceStandIn]) -> None:
    """Heartbeat the devices and wait until the deployer has seen each."""
    for device in devices:
        await device.heartbeat()

    async def seen() -> bool:
        for device in devices:
            answer = await tenant.client.get(f"/v1/devices/{device.id}", headers=tenant.admin)
            if answer.json().get("status") != "online":
                return False
        return True

    await eventually(seen)


async def test_a_model_blocked_during_a_rollout_holds_it_before_the_next_wave(
    tenant: Tenant, app: FastAPI
) -> None:
    version = await tenant.new_version()
    devices = [await tenant.register_device(f"edge-{i}") for i in range(2)]
    await online(tenant, devices)
    await choose_gate(tenant, "enforce")
    await registry_says(tenant, "registry.model.approved", model_data(tenant, "approved"))
    await projected(app, tenant, gate="enforce", approval="approved")

    created = await tenant.client.post(
        "/v1/rollouts",
        json={
            "version_id": version["id"],
            "device_ids": [str(d.id) for d in devices],
            "waves": [{"count": 1}, {"count": 1}],
            "soak_s": 3,
            "offline_timeout_s": 60,
        },
        headers=tenant.admin,
    )
    assert created.status_code == 201, created.text
    rollout = created.json()
    canary_id, later_id = (d["device_id"] for d in rollout["devices"])
    canary = next(d for d in devices if str(d.id) == canary_id)
    later = next(d for d in devices if str(d.id) == later_id)
    command = await canary.next_command(within=20)
    assert command.action.value == "deploy"
    await canary.report(command.deployment_id, "running", version_id=version["id"])

    async def healthy() -> bool:
        current = await rollout_of(tenant, rollout["id"])
        return bool(current["devices"][0]["state"] == "healthy")

    await eventually(healthy, within=20, interval=0.2)
    await registry_says(
        tenant, "registry.model.blocked", model_data(tenant, "blocked", approval_comment="leak")
    )

    async def held() -> dict[str, Any] | None:
        current = await rollout_of(tenant, rollout["id"])
        return current if current["state"] == "paused" else None

    paused = await eventually(held, within=30, interval=0.2)

    assert "policy gate refused wave 2" in paused["reason"], paused
    assert "blocked" in paused["reason"]
    waiting = next(d for d in paused["devices"] if d["device_id"] == later_id)
    assert (waiting["state"], waiting["deployment_id"]) == ("waiting", None)
    assert not [c for c in later.received if c.action.value == "deploy"]
    history = await tenant.client.get(f"/v1/rollouts/{rollout['id']}/history", headers=tenant.admin)
    assert "paused" in [e["kind"] for e in history.json()["items"]]

    # Resuming judges the wave again: still blocked, so it is held again, still with the reason.
    resumed = await tenant.client.post(f"/v1/rollouts/{rollout['id']}/resume", headers=tenant.admin)
    assert resumed.status_code == 202, resumed.text
    again = await eventually(held, within=30, interval=0.2)
    assert "policy gate refused wave 2" in again["reason"]
    abort = await tenant.client.post(f"/v1/rollouts/{rollout['id']}/abort", headers=tenant.admin)
    assert abort.status_code == 202, abort.text
    assert uuid.UUID(abort.json()["id"]) == uuid.UUID(rollout["id"])
