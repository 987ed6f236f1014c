"""A rollout wave larger than one create's device limit (`MAX_DEVICE_IDS`, 1,000) is created in
batches inside one savepoint: every device of the wave gets its deployment and one command.

The limit is lowered to 2 for the test, so a wave of 5 devices takes three batches; device
stand-ins speak the agent's protocol over the real broker, the engine runs in the app.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from deployer_testkit import Tenant, eventually
from pydantic import ValidationError
from test_rollout_gate import online, rollout_of

from modelyard_deployer.deployments.schemas import MAX_DEVICE_IDS, DeploymentCreate
from modelyard_deployer.rollouts import engine


def test_one_create_names_at_most_the_limit() -> None:
    """Why waves are batched: one create refuses more devices than the limit."""
    ids = [uuid.uuid4() for _ in range(MAX_DEVICE_IDS + 1)]
    DeploymentCreate(version_id=uuid.uuid4(), device_ids=ids[:-1])
    with pytest.raises(ValidationError):
        DeploymentCreate(version_id=uuid.uuid4(), device_ids=ids)


async def test_a_wave_over_the_create_limit_reaches_every_device_once(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "MAX_DEVICE_IDS", 2)
    batches: list[int] = []
    create = engine.create_deployments

    async def counted(deploying: Any, *, body: DeploymentCreate) -> Any:
        batches.append(len(body.device_ids or []))
        return await create(deploying, body=body)

    monkeypatch.setattr(engine, "create_deployments", counted)
    version = await tenant.new_version()
    devices = [await tenant.register_device(f"batch-{i}") for i in range(5)]
    await online(tenant, devices)

    created = await tenant.client.post(
        "/v1/rollouts",
        json={
            "version_id": version["id"],
            "device_ids": [str(d.id) for d in devices],
            "waves": [{"count": 5}],
            "soak_s": 1,
            "offline_timeout_s": 60,
        },
        headers=tenant.admin,
    )
    assert created.status_code == 201, created.text
    rollout_id = created.json()["id"]

    async def all_updating() -> dict[str, str] | None:
        current = await rollout_of(tenant, rollout_id)
        members = {d["device_id"]: d["deployment_id"] for d in current["devices"]}
        return members if all(members.values()) else None

    members = await eventually(all_updating, within=30, interval=0.2)
    assert len(set(members.values())) == 5
    assert batches == [2, 2, 1]
    for device in devices:
        command = await device.next_command(within=20)
        assert command.action.value == "deploy"
        assert str(command.deployment_id) == members[str(device.id)]
        await device.report(command.deployment_id, "running", version_id=version["id"])

    async def completed() -> dict[str, object] | None:
        current = await rollout_of(tenant, rollout_id)
        return current if current["state"] == "completed" else None

    done = await eventually(completed, within=30, interval=0.2)
    assert [d["state"] for d in done["devices"]] == ["healthy"] * 5
    listed = await tenant.client.get(
        "/v1/deployments", params={"version_id": version["id"]}, headers=tenant.admin
    )
    assert len(listed.json()["items"]) == 5
    # One deploy command each, none twice.
    assert [sum(c.action.value == "deploy" for c in d.received) for d in devices] == [1] * 5
