"""Deployments over the real broker: commands to device stand-ins, reports back, history."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from cryptography.fernet import Fernet
from deployer_testkit import OPENAI_MANIFEST, DeviceStandIn, EventTap, Tenant, eventually

from modelyard_common.contracts import (
    DEPLOYMENT_STATE_CHANGED,
    ENDPOINT_GONE,
    ENDPOINT_READY,
    CommandAction,
    DesiredState,
    DeviceCommand,
)
from modelyard_common.device_identity import ingress_token, token_hash
from modelyard_common.events import CloudEvent, new_event
from modelyard_deployer.settings import DeployerSettings

LIFECYCLE = ["downloading", "verifying", "building", "starting", "running"]


async def run_through(device: DeviceStandIn, deployment_id: str, states: list[str]) -> None:
    for state in states:
        await device.report(deployment_id, state, message=f"now {state}")


async def test_deploy_to_several_devices_and_report_back(tenant: Tenant, tap: EventTap) -> None:
    version = await tenant.new_version()
    first = await tenant.register_device("line-1")
    second = await tenant.register_device("line-2")

    deployments = await tenant.deploy(version["id"], [first, second])

    assert {d["device_id"] for d in deployments} == {str(first.id), str(second.id)}
    assert all(d["state"] == "pending" and d["desired_state"] == "running" for d in deployments)
    by_device = {d["device_id"]: d for d in deployments}
    for device in (first, second):
        command = await device.next_command()
        deployment = by_device[str(device.id)]
        assert command.deployment_id == uuid.UUID(deployment["id"])
        assert command.action is CommandAction.deploy
        assert command.desired_state is DesiredState.running
        assert command.generation == 1
        assert command.version.sha256 == version["sha256"]
        assert command.version.model_name == "fraud-detector"
        assert command.version.artifact_url == (
            f"http://deployer.test/v1/versions/{version['id']}/artifact"
        )
        # The device fetches exactly the bytes the command promises.
        download = await device.download(command.version.artifact_url)
        assert download.status_code == 200
        assert hashlib.sha256(download.content).hexdigest() == command.version.sha256
        await run_through(device, deployment["id"], LIFECYCLE)

    for deployment in deployments:
        current = await tenant.wait_state(deployment["id"], "running")
        assert current["running_version_id"] == version["id"]
    history = await tenant.history(deployments[0]["id"])
    assert [(h["source"], h["state"]) for h in history] == [
        ("deployer", "pending"),
        *[("agent", state) for state in LIFECYCLE],
    ]
    assert history[1]["message"] == "now downloading"
    assert all(h["applied"] for h in history)

    async def announced() -> bool:
        changes = tap.of(deployments[0]["id"], DEPLOYMENT_STATE_CHANGED)
        return [c.data["state"] for c in changes] == LIFECYCLE

    await eventually(announced)


async def test_deploy_by_label_selector(tenant: Tenant) -> None:
    version = await tenant.new_version()
    north = await tenant.register_device("n1", {"site": "north"})
    north_gpu = await tenant.register_device("n2", {"site": "north", "gpu": "yes"})
    await tenant.register_device("s1", {"site": "south"})

    response = await tenant.client.post(
        "/v1/deployments",
        json={"version_id": version["id"], "selector": {"site": "north"}},
        headers=tenant.admin,
    )

    assert response.status_code == 201, response.text
    assert sorted(d["device_name"] for d in response.json()["items"]) == ["n1", "n2"]
    for device in (north, north_gpu):
        assert (await device.next_command()).version.id == uuid.UUID(version["id"])
    nobody = await tenant.client.post(
        "/v1/deployments",
        json={"version_id": version["id"], "selector": {"site": "mars"}},
        headers=tenant.admin,
    )
    assert nobody.status_code == 422


async def test_offline_device_catches_up_and_superseded_commands_lose(tenant: Tenant) -> None:
    """Commands sent while the device is away wait in its queue; the newest generation wins."""
    version = await tenant.new_version()
    device = await tenant.register_device("sleepy", connect=False)
    (deployment,) = await tenant.deploy(version["id"], [device])
    for action in ("stop", "start", "stop"):
        response = await tenant.client.post(
            f"/v1/deployments/{deployment['id']}/{action}", headers=tenant.admin
        )
        assert response.status_code == 202, response.text

    await device.connect()
    commands = [await device.next_command() for _ in range(4)]

    assert [c.generation for c in commands] == [1, 2, 3, 4]
    assert [c.action.value for c in commands] == ["deploy", "stop", "start", "stop"]
    assert device.applied[uuid.UUID(deployment["id"])].desired_state is DesiredState.stopped
    # A replayed older command (say, a redelivery) does not undo the newer desired state.
    await tenant.broker.publish(
        _command_event(commands[2]), exchange="aimodels.devices", routing_key=device.queue
    )
    replay = await device.next_command()
    assert replay.generation == 3
    assert device.applied[uuid.UUID(deployment["id"])].generation == 4
    assert (await tenant.deployment(deployment["id"]))["desired_state"] == "stopped"


def _command_event(command: DeviceCommand) -> CloudEvent:
    return new_event(
        type="deployer.device.command", source="test-replay", data=command.model_dump(mode="json")
    )


async def test_late_and_duplicate_reports_change_nothing(tenant: Tenant) -> None:
    version = await tenant.new_version()
    device = await tenant.register_device("late")
    (deployment,) = await tenant.deploy(version["id"], [device])
    await device.next_command()
    await device.report(deployment["id"], "downloading", sequence=1)
    running = await device.report(deployment["id"], "running", sequence=5)
    await tenant.wait_state(deployment["id"], "running")

    await device.report(deployment["id"], "downloading", sequence=3, message="late")
    await device.report(deployment["id"], "running", sequence=5, event_id=running.id)
    await device.report(deployment["id"], "starting", sequence=4, event_id=str(uuid.uuid4()))
    await device.report(deployment["id"], "stopped", sequence=6, message="marker")
    await tenant.wait_state(deployment["id"], "stopped")

    history = await tenant.history(deployment["id"], source="agent")
    assert [(h["sequence"], h["state"], h["applied"]) for h in history] == [
        (1, "downloading", True),
        (5, "running", True),
        (3, "downloading", False),
        (4, "starting", False),
        (6, "stopped", True),
    ]


async def test_cancel_a_stuck_first_deployment(tenant: Tenant) -> None:
    version = await tenant.new_version()
    device = await tenant.register_device("stuck")
    (deployment,) = await tenant.deploy(version["id"], [device])
    await device.next_command()
    await device.report(deployment["id"], "downloading")
    await tenant.wait_state(deployment["id"], "downloading")

    cancelled = await tenant.client.post(
        f"/v1/deployments/{deployment['id']}/cancel", headers=tenant.admin
    )

    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["desired_state"] == "removed"
    command = await device.next_command()
    assert command.action is CommandAction.cancel
    assert command.generation == 2
    assert command.desired_state is DesiredState.removed
    # A report the agent sent before it saw the cancel is history, not the current state.
    await device.report(deployment["id"], "building", generation=1)
    await device.report(deployment["id"], "removed", generation=2)
    await tenant.wait_state(deployment["id"], "removed")
    history = await tenant.history(deployment["id"])
    assert [(h["state"], h["applied"]) for h in history][-3:] == [
        ("cancelled", True),
        ("building", False),
        ("removed", True),
    ]
    again = await tenant.client.post(
        f"/v1/deployments/{deployment['id']}/cancel", headers=tenant.admin
    )
    assert again.status_code == 409


async def test_redeploy_then_roll_back(tenant: Tenant) -> None:
    first = await tenant.new_version(title="v1")
    second = await tenant.new_version(title="v2")
    device = await tenant.register_device("switcher")
    (deployment,) = await tenant.deploy(first["id"], [device])
    await device.next_command()
    no_previous = await tenant.client.post(
        f"/v1/deployments/{deployment['id']}/rollback", headers=tenant.admin
    )
    assert no_previous.status_code == 409
    await run_through(device, deployment["id"], LIFECYCLE)
    await tenant.wait_state(deployment["id"], "running")

    (redeployed,) = await tenant.deploy(second["id"], [device])

    assert redeployed["id"] == deployment["id"]
    assert redeployed["version_id"] == second["id"]
    assert redeployed["previous_version_id"] == first["id"]
    command = await device.next_command()
    assert (command.version.id, command.previous_version.id) == (  # type: ignore[union-attr]
        uuid.UUID(second["id"]),
        uuid.UUID(first["id"]),
    )
    await run_through(device, deployment["id"], LIFECYCLE)
    await tenant.wait_state(deployment["id"], "running")
    busy = await tenant.client.delete(f"/v1/versions/{first['id']}", headers=tenant.admin)
    assert busy.status_code == 409

    rolled = await tenant.client.post(
        f"/v1/deployments/{deployment['id']}/rollback", headers=tenant.admin
    )

    assert rolled.status_code == 202
    assert rolled.json()["version_id"] == first["id"]
    assert rolled.json()["previous_version_id"] == second["id"]
    command = await device.next_command()
    assert command.action is CommandAction.rollback
    assert command.version.id == uuid.UUID(first["id"])
    await device.report(deployment["id"], "rolled_back", version_id=first["id"])
    await device.report(deployment["id"], "running", version_id=first["id"])
    current = await tenant.wait_state(deployment["id"], "running")
    assert current["running_version_id"] == first["id"]
    model_history = await tenant.client.get(
        f"/v1/models/{tenant.model_id}/deployment-history",
        params={"source": "deployer"},
        headers=tenant.admin,
    )
    assert [h["action"] for h in model_history.json()["items"]] == ["deploy", "deploy", "rollback"]


async def test_remove_then_version_can_be_deleted(tenant: Tenant) -> None:
    version = await tenant.new_version()
    device = await tenant.register_device("remover")
    (deployment,) = await tenant.deploy(version["id"], [device])
    await device.next_command()

    removed = await tenant.client.delete(
        f"/v1/deployments/{deployment['id']}", headers=tenant.admin
    )

    assert removed.status_code == 202
    assert removed.json()["desired_state"] == "removed"
    command = await device.next_command()
    assert (command.action, command.desired_state) == (CommandAction.remove, DesiredState.removed)
    busy = await tenant.client.delete(f"/v1/versions/{version['id']}", headers=tenant.admin)
    assert busy.status_code == 409
    await device.report(deployment["id"], "removing")
    await device.report(deployment["id"], "removed")
    await tenant.wait_state(deployment["id"], "removed")
    freed = await tenant.client.delete(f"/v1/versions/{version['id']}", headers=tenant.admin)
    assert freed.status_code == 204
    manage = await tenant.client.get(f"/v1/devices/{device.id}/deployments", headers=tenant.admin)
    assert manage.json()["items"] == []
    with_removed = await tenant.client.get(
        f"/v1/devices/{device.id}/deployments",
        params={"include_removed": "true"},
        headers=tenant.admin,
    )
    assert [d["id"] for d in with_removed.json()["items"]] == [deployment["id"]]


async def test_openai_endpoint_is_announced_and_withdrawn(
    tenant: Tenant, tap: EventTap, settings: DeployerSettings
) -> None:
    version = await tenant.new_version(manifest=OPENAI_MANIFEST)
    device = await tenant.register_device("llm-box", {"gpu": "a100"})
    (deployment,) = await tenant.deploy(version["id"], [device])
    await device.next_command()

    await run_through(device, deployment["id"], LIFECYCLE[:-1])
    # What the device says about its own address is ignored: the URL is the registered
    # address's ingress, whatever the report claims.
    await device.report(
        deployment["id"], "running", host_port=41234, base_url="http://evil.example:80"
    )
    current = await tenant.wait_state(deployment["id"], "running")
    ingress = f"http://10.0.0.7:8004/deployments/{deployment['id']}"
    assert current["base_url"] == ingress

    async def ready() -> list[CloudEvent]:
        return tap.of(deployment["id"], ENDPOINT_READY)

    (announcement,) = await eventually(ready)
    sealed = announcement.data.pop("ingress_token_sealed")
    assert announcement.data == {
        "deployment_id": deployment["id"],
        "model_id": str(tenant.model_id),
        "version_id": version["id"],
        "device_id": str(device.id),
        "base_url": ingress,
        "device_labels": {"gpu": "a100"},
        "workspace": tenant.workspace,
        "sequence": 1,
    }
    # The ingress credential travels sealed for the gateway, and is the device's own.
    assert "myin_" not in json.dumps(announcement.data)
    assert "myin_" not in sealed
    opened = Fernet(settings.ingress_seal_key.encode()).decrypt(sealed.encode()).decode()
    assert opened == ingress_token(token_hash(device.token), device.id)
    stop = await tenant.client.post(
        f"/v1/deployments/{deployment['id']}/stop", headers=tenant.admin
    )
    assert stop.status_code == 202
    await device.report(deployment["id"], "stopped")

    async def gone() -> list[CloudEvent]:
        return tap.of(deployment["id"], ENDPOINT_GONE)

    (withdrawal,) = await eventually(gone)
    assert withdrawal.data["base_url"] == ingress
    assert withdrawal.data["sequence"] == 2
    assert withdrawal.data["ingress_token_sealed"] is None
    assert (await tenant.deployment(deployment["id"]))["base_url"] is None


async def test_device_lists_its_models_and_filters(tenant: Tenant) -> None:
    other_model = tenant.add_model("second-model")
    first = await tenant.new_version()
    second = await tenant.new_version(model_id=other_model)
    device = await tenant.register_device("multi")
    (a,) = await tenant.deploy(first["id"], [device])
    (b,) = await tenant.deploy(second["id"], [device])
    await device.report(a["id"], "running", generation=1)
    await tenant.wait_state(a["id"], "running")

    everything = await tenant.client.get(
        f"/v1/devices/{device.id}/deployments", headers=tenant.admin
    )
    running = await tenant.client.get(
        f"/v1/devices/{device.id}/deployments", params={"state": "running"}, headers=tenant.admin
    )

    assert {d["model_name"] for d in everything.json()["items"]} == {
        "fraud-detector",
        "second-model",
    }
    assert [d["id"] for d in running.json()["items"]] == [a["id"]]
    by_model = await tenant.client.get(
        f"/v1/models/{other_model}/deployments", headers=tenant.admin
    )
    assert [d["id"] for d in by_model.json()["items"]] == [b["id"]]


async def test_idempotent_deploy_and_same_version_is_not_resent(tenant: Tenant) -> None:
    version = await tenant.new_version()
    device = await tenant.register_device("idem")
    headers = {**tenant.admin, "Idempotency-Key": "deploy-1"}
    body = {"version_id": version["id"], "device_ids": [str(device.id)]}

    first = await tenant.client.post("/v1/deployments", json=body, headers=headers)
    retry = await tenant.client.post("/v1/deployments", json=body, headers=headers)
    again = await tenant.client.post("/v1/deployments", json=body, headers=tenant.admin)

    assert first.json() == retry.json()
    assert again.json()["items"][0]["generation"] == 1
    await device.next_command()
    with pytest.raises(TimeoutError):
        await device.next_command(within=1.0)


async def test_restart_and_redeploy_endpoint(tenant: Tenant) -> None:
    first = await tenant.new_version()
    second = await tenant.new_version()
    foreign = await tenant.new_version(model_id=tenant.add_model("unrelated"))
    device = await tenant.register_device("ops")
    (deployment,) = await tenant.deploy(first["id"], [device])
    await device.next_command()
    url = f"/v1/deployments/{deployment['id']}"

    restarted = await tenant.client.post(f"{url}/restart", headers=tenant.admin)
    wrong_model = await tenant.client.post(
        f"{url}/redeploy", json={"version_id": foreign["id"]}, headers=tenant.admin
    )
    redeployed = await tenant.client.post(
        f"{url}/redeploy", json={"version_id": second["id"]}, headers=tenant.admin
    )

    assert restarted.status_code == 202
    restart = await device.next_command()
    assert (restart.action, restart.generation) == (CommandAction.restart, 2)
    assert wrong_model.status_code == 422
    assert redeployed.status_code == 202
    assert redeployed.json()["version_id"] == second["id"]
    assert redeployed.json()["state"] == "pending"
    switch = await device.next_command()
    assert (switch.action, switch.generation) == (CommandAction.deploy, 3)
    assert switch.version.id == uuid.UUID(second["id"])
    assert switch.previous_version is not None
    assert switch.previous_version.id == uuid.UUID(first["id"])


async def test_endpoint_url_follows_the_device_record_not_reports(
    tenant: Tenant, tap: EventTap
) -> None:
    version = await tenant.new_version(manifest=OPENAI_MANIFEST)
    device = await tenant.register_device("llm-2", advertise_host="llm-2.lan")
    (deployment,) = await tenant.deploy(version["id"], [device])
    await device.next_command()

    await device.report(
        deployment["id"], "running", base_url="http://attacker.example:9000/v1", host_port=9000
    )

    current = await tenant.wait_state(deployment["id"], "running")
    assert current["base_url"] == f"http://llm-2.lan:8004/deployments/{deployment['id']}"

    async def ready() -> list[CloudEvent]:
        return tap.of(deployment["id"], ENDPOINT_READY)

    (announcement,) = await eventually(ready)
    assert announcement.data["base_url"] == current["base_url"]
    # An admin moving the device re-announces its endpoint at the new registered address.
    etag = (await tenant.client.get(f"/v1/devices/{device.id}", headers=tenant.admin)).headers[
        "ETag"
    ]
    moved = await tenant.client.patch(
        f"/v1/devices/{device.id}",
        json={"advertise_host": "10.9.8.7", "ingress_port": 9443},
        headers={**tenant.admin, "If-Match": etag},
    )
    assert moved.status_code == 200, moved.text

    async def moved_ready() -> list[CloudEvent]:
        events = tap.of(deployment["id"], ENDPOINT_READY)
        return events if len(events) == 2 else []

    second = (await eventually(moved_ready))[1]
    assert second.data["base_url"] == f"http://10.9.8.7:9443/deployments/{deployment['id']}"
    assert [e.data["sequence"] for e in tap.of(deployment["id"], ENDPOINT_GONE)] == [2]
    assert second.data["sequence"] == 3
    # A handlers-protocol deployment never announces an OpenAI endpoint.
    plain = await tenant.new_version()
    (other,) = await tenant.deploy(plain["id"], [await tenant.register_device("plain")])
    await tenant.devices[-1].next_command()
    await tenant.devices[-1].report(other["id"], "running", host_port=8080)
    assert (await tenant.wait_state(other["id"], "running"))["base_url"] is None
    assert tap.of(other["id"], ENDPOINT_READY) == []
