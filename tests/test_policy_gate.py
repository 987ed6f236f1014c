"""The policy gate end to end (issue 14, "Done means"): the registry's approvals decide what runs.

Registry, deployer and gateway run as processes with the product's default gate (`enforce`),
with a real PostgreSQL, RabbitMQ and Docker engine and a device agent. Under `enforce`: a draft
model cannot be deployed (409), review and approval take two people, the approved model runs and
is served by a bound group, and once blocked the device stops it and clients get the policy
error within seconds; history says who did each step and when. Under `warn` (another workspace,
same platform): everything runs, and every step carries the warning.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from suite_testkit import STEP_TIMEOUT_S, Suite, openai_manifest, running_suite  # tests/ on path

from modelyard_testkit.testing import bearer, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.end_to_end]

ENFORCED = "gate-enforce"
WARNED = "gate-warn"
BLOCK_DEADLINE_S = 30.0  # "within seconds", with room for a loaded CI machine


@pytest.fixture
async def suite(commands: Any, tmp_path: Path) -> AsyncIterator[Suite]:
    """Return the platform with the product's default gate (tests elsewhere run it `off`)."""
    async with running_suite(
        commands,
        tmp_path,
        workspace=ENFORCED,
        kind=Suite,
        extra_env={"MODELYARD_POLICY_DEFAULT_GATE": "enforce"},
    ) as running:
        yield running


class People:
    """Three people of one workspace: an editor, an approver and an admin."""

    def __init__(self, workspace: str) -> None:
        self.alice = bearer("editor", workspace, sub="alice")  # asks for review
        self.bob = bearer("approver", workspace, sub="bob")  # decides
        self.admin = bearer("admin", workspace, sub="root")


async def call(
    suite: Suite, method: str, url: str, headers: dict[str, str], body: Any = None
) -> httpx.Response:
    return await suite.http.request(method, url, headers=headers, json=body)


async def chat(suite: Suite, key: str, group: str) -> httpx.Response:
    return await suite.http.post(
        f"{suite.gateway}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": group, "messages": [{"role": "user", "content": "hi"}]},
    )


async def model_and_version(suite: Suite, people: People, name: str) -> tuple[Any, Any]:
    made = await call(
        suite,
        "POST",
        f"{suite.registry}/v1/models",
        people.alice,
        {"name": name, "learning_type": "supervised", "foundations": "transformer"},
    )
    assert made.status_code == 201, made.text
    model = made.json()
    assert model["approval"] == "draft"
    version = await suite.upload(model["id"], "openai_echo", openai_manifest(), "first")
    return model, version


@pytest.mark.timeout(900)
async def test_the_gate_refuses_then_runs_then_stops_a_blocked_model(suite: Suite) -> None:
    people = People(ENFORCED)
    policy = await call(suite, "GET", f"{suite.registry}/v1/policy", people.alice)
    assert policy.json()["gate"] == "enforce"
    assert policy.json()["is_default"] is True
    model, version = await model_and_version(suite, people, f"scorer-{uuid.uuid4().hex[:6]}")
    agent = await suite.start_agent("gate-device", {"site": "plant-1"})
    deploy = {"version_id": version["id"], "device_ids": [agent.device_id]}

    # A draft model cannot be deployed, nor bound: 409 naming its approval; nothing is made.
    refused = await call(suite, "POST", f"{suite.deployer}/v1/deployments", people.admin, deploy)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["type"].endswith("/policy-refused")
    assert (problem["approval"], problem["gate"]) == ("draft", "enforce")
    assert "draft" in problem["detail"]
    listed = await call(suite, "GET", f"{suite.deployer}/v1/deployments", people.admin)
    assert listed.json()["items"] == []
    group_body = {"name": f"scorer-{uuid.uuid4().hex[:4]}", "registry_model_id": model["id"]}
    unbound = await call(suite, "POST", f"{suite.gateway}/v1/groups", people.admin, group_body)
    assert unbound.status_code == 409, unbound.text
    assert unbound.json()["approval"] == "draft"

    # Four eyes: alice asks, alice cannot decide, bob approves.
    approval = f"{suite.registry}/v1/models/{model['id']}/approval"
    asked = await call(suite, "POST", f"{approval}/request", people.alice, {"comment": "ready"})
    assert asked.status_code == 200, asked.text
    self_approved = await call(
        suite,
        "POST",
        f"{approval}/decision",
        bearer("approver", ENFORCED, sub="alice"),
        {"decision": "approved", "comment": "mine"},
    )
    assert self_approved.status_code == 403
    approved = await call(
        suite, "POST", f"{approval}/decision", people.bob, {"decision": "approved", "comment": "ok"}
    )
    assert approved.status_code == 200, approved.text

    # The deployer hears of it (event) and lets the deployment through; the group binds.
    async def deployed() -> Any:
        answer = await call(suite, "POST", f"{suite.deployer}/v1/deployments", people.admin, deploy)
        return answer.json() if answer.status_code == 201 else None

    (deployment,) = (await wait_for(deployed, timeout=STEP_TIMEOUT_S, interval=0.5))["items"]
    assert deployment["policy_warning"] is None
    await suite.wait_deployment(deployment["id"], version_id=version["id"])
    bound = await call(suite, "POST", f"{suite.gateway}/v1/groups", people.admin, group_body)
    assert bound.status_code == 201, bound.text
    assert bound.json()["policy"] == {
        "gate": "enforce",
        "approval": "approved",
        "serving": True,
        "reason": None,
    }
    made_key = await call(
        suite, "POST", f"{suite.gateway}/v1/keys", people.admin, {"name": "gate-client"}
    )
    key = made_key.json()["key"]

    async def served() -> bool:
        return (await chat(suite, key, group_body["name"])).status_code == 200

    await wait_for(served, timeout=STEP_TIMEOUT_S, interval=0.5)

    # Blocked: the device stops it and the gateway refuses clients, within seconds.
    blocked_at = time.monotonic()
    blocked = await call(
        suite,
        "POST",
        f"{approval}/decision",
        people.bob,
        {"decision": "blocked", "comment": "bias found in audit"},
    )
    assert blocked.status_code == 200, blocked.text

    async def refused_to_clients() -> httpx.Response | None:
        answer = await chat(suite, key, group_body["name"])
        return answer if answer.status_code == 403 else None

    answer = await wait_for(refused_to_clients, timeout=BLOCK_DEADLINE_S, interval=0.1)
    gateway_s = time.monotonic() - blocked_at
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("permission_error", "model_not_approved")
    assert "blocked" in error["message"]
    assert "bias" not in error["message"]  # why, and who decided, is for admins

    async def device_stopped() -> Any:
        current = (
            await call(
                suite, "GET", f"{suite.deployer}/v1/deployments/{deployment['id']}", people.admin
            )
        ).json()
        return current if current["state"] == "stopped" else None

    stopped = await wait_for(device_stopped, timeout=BLOCK_DEADLINE_S, interval=0.2)
    device_s = time.monotonic() - blocked_at
    assert stopped["desired_state"] == "stopped"
    print(f"blocked -> gateway 403 in {gateway_s:.2f} s, device stopped in {device_s:.2f} s")
    _, containers = await suite.commands.run_command(
        "docker", "ps", "-q", "--filter", f"label=io.modelyard.deployment={deployment['id']}"
    )
    assert containers.strip() == ""

    # Admins see why; starting it again is refused.
    group = (
        await call(suite, "GET", f"{suite.gateway}/v1/groups/{bound.json()['id']}", people.admin)
    ).json()
    assert group["policy"]["serving"] is False
    assert "bias found in audit" in group["policy"]["reason"]
    assert "bob" in group["policy"]["reason"]
    restart = await call(
        suite, "POST", f"{suite.deployer}/v1/deployments/{deployment['id']}/start", people.admin
    )
    assert restart.status_code == 409
    assert restart.json()["approval"] == "blocked"

    # History: each step, with who and when.
    registry_history = (
        await call(suite, "GET", f"{suite.registry}/v1/models/{model['id']}/history", people.alice)
    ).json()["items"]
    steps = [(h["action"], h["actor"]) for h in registry_history]
    assert steps == [
        ("created", "alice"),
        ("review_requested", "alice"),
        ("approved", "bob"),
        ("blocked", "bob"),
    ]
    assert all(h["at"] for h in registry_history)
    deployer_history = (
        await call(
            suite,
            "GET",
            f"{suite.deployer}/v1/deployments/{deployment['id']}/history",
            people.admin,
        )
    ).json()["items"]
    stop = [h for h in deployer_history if h.get("action") == "stop"]
    assert len(stop) == 1
    assert stop[0]["actor"] == "policy-gate"
    assert "stopped by the policy gate" in stop[0]["message"]
    assert "blocked" in stop[0]["message"]
    assert stop[0]["recorded_at"]


@pytest.mark.timeout(900)
async def test_under_warn_everything_runs_and_every_step_carries_the_warning(
    suite: Suite,
) -> None:
    people = People(WARNED)
    suite.headers = people.admin  # the suite's helpers act in the warn workspace
    chosen = await call(
        suite,
        "PUT",
        f"{suite.registry}/v1/policy",
        people.admin,
        {"gate": "warn", "comment": "pilot"},
    )
    assert chosen.status_code == 200, chosen.text
    assert (chosen.json()["gate"], chosen.json()["is_default"]) == ("warn", False)
    model, version = await model_and_version(suite, people, f"pilot-{uuid.uuid4().hex[:6]}")
    agent = await suite.start_agent("warn-device", {"site": "lab"})
    deploy = {"version_id": version["id"], "device_ids": [agent.device_id]}

    # A draft model deploys, with the warning on the deployment and in its history.
    async def deployed() -> Any:
        answer = await call(suite, "POST", f"{suite.deployer}/v1/deployments", people.admin, deploy)
        body = answer.json()
        if answer.status_code != 201 or not body["items"][0]["policy_warning"]:
            return None  # the gate change may not have reached the deployer yet
        return body

    (deployment,) = (await wait_for(deployed, timeout=STEP_TIMEOUT_S, interval=0.5))["items"]
    assert "draft" in deployment["policy_warning"]
    await suite.wait_deployment(deployment["id"], version_id=version["id"])
    history_url = f"{suite.deployer}/v1/deployments/{deployment['id']}/history"
    history = (await call(suite, "GET", history_url, people.admin)).json()["items"]
    assert any("policy warning" in (h["message"] or "") for h in history)

    # The group binds, with the warning; clients are served, each answer carrying it.
    group_body = {"name": f"pilot-{uuid.uuid4().hex[:4]}", "registry_model_id": model["id"]}

    async def binds() -> httpx.Response | None:
        answer = await call(suite, "POST", f"{suite.gateway}/v1/groups", people.admin, group_body)
        return answer if answer.status_code == 201 else None  # until the gateway hears `warn`

    bound = await wait_for(binds, timeout=STEP_TIMEOUT_S, interval=0.5)
    policy = bound.json()["policy"]
    assert (policy["gate"], policy["approval"], policy["serving"]) == ("warn", "draft", True)
    key = (
        await call(suite, "POST", f"{suite.gateway}/v1/keys", people.admin, {"name": "warned"})
    ).json()["key"]

    async def served() -> httpx.Response | None:
        answer = await chat(suite, key, group_body["name"])
        return answer if answer.status_code == 200 else None

    await wait_for(served, timeout=STEP_TIMEOUT_S, interval=0.5)

    # Blocked under warn: it keeps running and serving, flagged, with a history entry.
    approval = f"{suite.registry}/v1/models/{model['id']}/approval"
    blocked = await call(
        suite, "POST", f"{approval}/decision", people.bob, {"decision": "blocked", "comment": "x"}
    )
    assert blocked.status_code == 200, blocked.text

    async def flagged() -> Any:
        current = (
            await call(
                suite, "GET", f"{suite.deployer}/v1/deployments/{deployment['id']}", people.admin
            )
        ).json()
        return current if "blocked" in (current["policy_warning"] or "") else None

    current = await wait_for(flagged, timeout=BLOCK_DEADLINE_S, interval=0.2)
    assert (current["desired_state"], current["state"]) == ("running", "running")

    async def warned_answer() -> httpx.Response | None:
        answer = await chat(suite, key, group_body["name"])
        warning = answer.headers.get("x-modelyard-policy-warning", "")
        return answer if answer.status_code == 200 and "blocked" in warning else None

    await wait_for(warned_answer, timeout=BLOCK_DEADLINE_S, interval=0.2)
    history = (await call(suite, "GET", history_url, people.admin)).json()["items"]
    flags = [h for h in history if h["actor"] == "policy-gate"]
    assert len(flags) == 1
    assert "keeps running" in flags[0]["message"]
    assert not [h for h in history if h.get("action") == "stop"]
    group = (
        await call(suite, "GET", f"{suite.gateway}/v1/groups/{bound.json()['id']}", people.admin)
    ).json()
    assert group["policy"]["serving"] is True
    assert "blocked" in group["policy"]["reason"]

    # The policy's own history: who chose warn, and when.
    changes = (await call(suite, "GET", f"{suite.registry}/v1/policy/history", people.alice)).json()
    assert [(c["actor"], c["changes"]["gate"]["new"]) for c in changes["items"]] == [
        ("root", "warn")
    ]
