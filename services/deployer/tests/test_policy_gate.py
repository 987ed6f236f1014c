"""The deployer's side of the policy gate, fed by registry events (its projection).

Each test's workspace chooses its gate with a `registry.policy.updated` event, as the registry
sends it; approvals arrive as `registry.model.*` events. The registry stand-in is consulted only
for models the deployer never heard of, so these tests also show the gate holding on the
projection alone (the registry could be down).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from deployer_testkit import (
    Tenant,
    choose_gate,
    eventually,
    model_data,
    projected,
    registry_says,
)
from fastapi import FastAPI
from modelyard_testkit.testing import TEST_JWT_SECRET
from sqlalchemy import text

from modelyard_common.auth import issue_token


async def deploy(tenant: Tenant, version_id: str, devices: list[Any]) -> Any:
    return await tenant.client.post(
        "/v1/deployments",
        json={"version_id": version_id, "device_ids": [str(d.id) for d in devices]},
        headers=tenant.admin,
    )


async def test_restricted_to_labels_refuses_the_devices_without_them(
    tenant: Tenant, app: FastAPI
) -> None:
    version = await tenant.new_version()
    berlin = await tenant.register_device("berlin", {"site": "berlin"}, connect=False)
    paris = await tenant.register_device("paris", {"site": "paris"}, connect=False)
    await choose_gate(tenant, "enforce")
    conditions = {"text": "Berlin only", "device_labels": {"site": ["berlin"]}}
    await registry_says(
        tenant,
        "registry.model.restricted",
        model_data(tenant, "restricted", approval_conditions=conditions),
    )
    await projected(app, tenant, gate="enforce", approval="restricted")
    refused = await deploy(tenant, version["id"], [berlin, paris])
    assert refused.status_code == 409, refused.text
    hits = tenant.registry.hits
    problem = refused.json()
    assert problem["type"].endswith("/policy-refused")
    assert (problem["approval"], problem["gate"]) == ("restricted", "enforce")
    assert [r["device_id"] for r in problem["refused"]] == [str(paris.id)]
    assert "site in (berlin)" in problem["detail"]
    listed = await tenant.client.get("/v1/deployments", headers=tenant.admin)
    assert listed.json()["items"] == []  # refusing one device changes nothing for the other

    allowed = await deploy(tenant, version["id"], [berlin])
    assert allowed.status_code == 201, allowed.text
    assert allowed.json()["items"][0]["policy_warning"] is None
    assert tenant.registry.hits == hits  # judged on the projection: the registry was not asked


async def test_an_older_approval_arriving_late_does_not_unblock(
    tenant: Tenant, app: FastAPI
) -> None:
    version = await tenant.new_version()
    device = await tenant.register_device("edge", connect=False)
    await choose_gate(tenant, "enforce")
    now = datetime.now(UTC)
    await registry_says(tenant, "registry.model.blocked", model_data(tenant, "blocked"), at=now)
    await projected(app, tenant, gate="enforce", approval="blocked")
    # The approval that preceded the block, redelivered late by another relay.
    late = await registry_says(
        tenant,
        "registry.model.approved",
        model_data(tenant, "approved"),
        at=now - timedelta(seconds=5),
    )

    async def consumed() -> bool:
        async with app.state.sessionmaker() as session:
            seen = await session.scalar(
                text("SELECT count(*) FROM deployer.processed_events WHERE event_id = :id"),
                {"id": late.id},
            )
        return bool(seen)

    await eventually(consumed)  # applied (or rather, considered) by the consumer
    refused = await deploy(tenant, version["id"], [device])
    assert refused.status_code == 409, refused.text
    assert refused.json()["approval"] == "blocked"


async def test_warn_flags_a_blocked_model_and_enforce_then_stops_it(
    tenant: Tenant, app: FastAPI
) -> None:
    version = await tenant.new_version()
    device = await tenant.register_device("edge")
    await choose_gate(tenant, "warn")
    await registry_says(tenant, "registry.model.approved", model_data(tenant, "approved"))
    await projected(app, tenant, gate="warn", approval="approved")
    answer = await deploy(tenant, version["id"], [device])
    assert answer.status_code == 201, answer.text
    deployment = answer.json()["items"][0]
    assert deployment["policy_warning"] is None
    command = await device.next_command()
    assert command.action.value == "deploy"

    await registry_says(
        tenant, "registry.model.blocked", model_data(tenant, "blocked", approval_comment="leak")
    )

    async def flagged() -> Any:
        current = await tenant.deployment(deployment["id"])
        return current if current["policy_warning"] else None

    current = await eventually(flagged)
    assert "blocked (by bob: leak)" in current["policy_warning"]
    assert current["desired_state"] == "running"
    history = await tenant.history(deployment["id"])
    assert [h["actor"] for h in history].count("policy-gate") == 1

    # The workspace tightens its gate: what runs against its approval is stopped now.
    await choose_gate(tenant, "enforce")
    stop = await device.next_command()
    assert stop.action.value == "stop"
    assert stop.deployment_id == uuid.UUID(deployment["id"])
    current = await tenant.deployment(deployment["id"])
    assert current["desired_state"] == "stopped"
    assert current["policy_warning"] is None
    entries = [h for h in await tenant.history(deployment["id"]) if h["action"] == "stop"]
    assert len(entries) == 1
    assert entries[0]["actor"] == "policy-gate"

    start = await tenant.client.post(
        f"/v1/deployments/{deployment['id']}/start", headers=tenant.admin
    )
    assert start.status_code == 409
    assert start.json()["approval"] == "blocked"


async def approved_before_its_event(tenant: Tenant, app: FastAPI) -> tuple[Any, Any]:
    """Return a version and a device of a model the deployer saw go in review under `enforce`,
    and that the registry approved since (its event not arrived yet)."""
    version = await tenant.new_version()
    device = await tenant.register_device("edge", connect=False)
    await choose_gate(tenant, "enforce")
    await registry_says(tenant, "registry.model.review_requested", model_data(tenant, "in_review"))
    await projected(app, tenant, gate="enforce", approval="in_review")
    tenant.registry.models[str(tenant.model_id)]["approval"] = "approved"  # decided meanwhile
    return version, device


async def test_a_refusal_is_confirmed_with_the_registry(tenant: Tenant, app: FastAPI) -> None:
    """An approval made a moment ago counts before its event arrives (the registry is asked)."""
    version, device = await approved_before_its_event(tenant, app)

    allowed = await deploy(tenant, version["id"], [device])
    assert allowed.status_code == 201, allowed.text


async def test_a_refusal_is_confirmed_for_a_person_of_several_workspaces(
    tenant: Tenant, app: FastAPI
) -> None:
    """The registry is asked in the workspace the caller acts in (the header passed on): a
    token granting several workspaces is refused by the registry without it, and the model
    would read as unknown (a 422 "no such registry model" for a model that exists)."""
    version, device = await approved_before_its_event(tenant, app)
    token = issue_token(
        secret=TEST_JWT_SECRET,
        sub="root",
        roles=["admin"],
        workspace=tenant.workspace,
        workspaces=[tenant.workspace, "another-workspace"],
    )
    hits = tenant.registry.hits
    allowed = await tenant.client.post(
        "/v1/deployments",
        json={"version_id": version["id"], "device_ids": [str(device.id)]},
        headers={"Authorization": f"Bearer {token}", "X-Modelyard-Workspace": tenant.workspace},
    )
    assert allowed.status_code == 201, allowed.text
    assert tenant.registry.hits == hits + 1  # the refusal was confirmed, not judged blind
