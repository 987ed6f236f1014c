"""The whole story across the four services, each a separate process (issue 6, "Done means").

Real HTTP between processes, a real RabbitMQ (a vhost of its own), a real PostgreSQL (a database
of its own) and the real Docker engine; two device agents, each with its own data directory and
port. The story: a model and a system linked in the registry; an OpenAI-protocol project
uploaded to the deployer and deployed to both devices; a gateway group bound to the registry
model, fed by the deployer's endpoint events; calls through the gateway with the `openai`
package; the serving deployment stopped and the next call answered by the other device with no
client error; a new version redeployed and seen in the history; a handlers-protocol project
called through an agent's local API.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI
from suite_testkit import MODEL_IMAGE, Suite, openai_manifest, running_suite  # tests/ on path

from modelyard_testkit.testing import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.end_to_end]

BIN = Path(sys.executable).parent
PROJECTS = Path(__file__).parent / "projects"
WORKSPACE = "e2e"
STEP_TIMEOUT_S = 120.0


@pytest.fixture
async def suite(commands: Any, tmp_path: Path) -> AsyncIterator[Suite]:
    """Return registry, deployer and gateway running as processes on a fresh database/vhost."""
    async with running_suite(commands, tmp_path, workspace=WORKSPACE, kind=Suite) as running:
        yield running


@pytest.mark.timeout(900)
async def test_a_model_goes_from_the_registry_to_devices_and_answers_through_the_gateway(
    suite: Suite,
) -> None:
    suffix = uuid.uuid4().hex[:6]

    # -- registry: the governance inventory --------------------------------------------------
    model = await suite.post(
        f"{suite.registry}/v1/models",
        {
            "name": f"support-chat-{suffix}",
            "learning_type": "supervised",
            "functionality": "customer support chat",
            "foundations": "transformer",
            "description": "## Known limits\nEchoes its input.",
        },
        status=201,
    )
    system = await suite.post(
        f"{suite.registry}/v1/systems",
        {"name": f"helpdesk-{suffix}", "risk_level": "limited", "purpose": "answer tickets"},
        status=201,
    )
    # Read-your-writes: a client that got 201 must find the resource at once.
    for path in (f"models/{model['id']}", f"systems/{system['id']}"):
        response = await suite.http.get(f"{suite.registry}/v1/{path}", headers=suite.headers)
        assert response.status_code == 200, (
            f"GET /v1/{path} right after its 201: {response.status_code} (the create was not "
            "committed before the response was sent)"
        )
    use = "drafts the first answer to a ticket"
    await suite.post(
        f"{suite.registry}/v1/systems/{system['id']}/models",
        {"model_id": model["id"], "description_of_use": use},
        status=201,
    )
    using = await suite.get(f"{suite.registry}/v1/models/{model['id']}/systems")
    assert [(s["system_id"], s["description_of_use"]) for s in using] == [(system["id"], use)]

    # -- deployer: a version, two devices, a deployment to both ------------------------------
    manifest_v1 = openai_manifest(REPLY_PREFIX="v1")
    v1 = await suite.upload(model["id"], "openai_echo", manifest_v1, "first")
    agent_a = await suite.start_agent(f"device-a-{suffix}", {"site": "a"})
    agent_b = await suite.start_agent(f"device-b-{suffix}", {"site": "b"})

    async def both_online() -> bool:
        page = await suite.get(f"{suite.deployer}/v1/devices?status=online")
        online = {d["id"] for d in page["items"]}
        return {agent_a.device_id, agent_b.device_id} <= online

    await wait_for(both_online, timeout=STEP_TIMEOUT_S, interval=0.5)
    batch = await suite.post(
        f"{suite.deployer}/v1/deployments",
        {"version_id": v1["id"], "device_ids": [agent_a.device_id, agent_b.device_id]},
        status=201,
    )
    deployment_of = {d["device_id"]: d["id"] for d in batch["items"]}
    assert set(deployment_of) == {agent_a.device_id, agent_b.device_id}
    for deployment_id in deployment_of.values():
        await suite.wait_deployment(deployment_id, version_id=v1["id"])

    # -- gateway: a group bound to the registry model after its deployments run (as the README
    # walkthrough does), and a client key: the group asks the deployer what already runs.
    group_name = f"support-chat-{suffix}"
    group = await suite.post(
        f"{suite.gateway}/v1/groups",
        {"name": group_name, "registry_model_id": model["id"]},
        status=201,
    )
    key = await suite.post(
        f"{suite.gateway}/v1/keys", {"name": "e2e", "groups": [group_name]}, status=201
    )

    async def group_has_both() -> bool:
        current = await suite.get(f"{suite.gateway}/v1/groups/{group['id']}")
        return len(current["instance_ids"]) == 2

    await wait_for(group_has_both, timeout=STEP_TIMEOUT_S, interval=0.5)

    # -- the model through the gateway, with the openai package ------------------------------
    client = AsyncOpenAI(
        base_url=f"{suite.gateway}/v1", api_key=key["key"], max_retries=0, timeout=30
    )

    async def ask(text: str) -> tuple[str, str]:
        raw = await client.chat.completions.with_raw_response.create(
            model=group_name, messages=[{"role": "user", "content": text}]
        )
        completion = raw.parse()
        return completion.choices[0].message.content or "", raw.headers["x-modelyard-instance"]

    answer, first_instance = await ask("hello")
    assert answer == "v1: hello"
    by_instance = {f"deployment-{d}": d for d in deployment_of.values()}
    assert first_instance in by_instance
    serving, standby = (
        by_instance[first_instance],
        next(d for name, d in by_instance.items() if name != first_instance),
    )

    # -- its container dies behind everyone's back: the gateway fails over on its own ---------
    _, container = await suite.commands.run_command(
        "docker", "ps", "-q", "--filter", f"label=io.modelyard.deployment={serving}"
    )
    assert len(container.split()) == 1
    await suite.commands.run_command("docker", "stop", "--time", "1", container.strip())
    answer, instance = await ask("anyone home?")
    assert answer == "v1: anyone home?"
    assert instance == f"deployment-{standby}"

    # -- stop the serving deployment: the next call is answered by the other device ----------
    stopped = await suite.post(f"{suite.deployer}/v1/deployments/{serving}/stop", {}, status=202)
    assert stopped["desired_state"] == "stopped"

    async def is_stopped() -> bool:
        deployment = await suite.get(f"{suite.deployer}/v1/deployments/{serving}")
        return deployment["state"] == "stopped"

    await wait_for(is_stopped, timeout=STEP_TIMEOUT_S, interval=0.25)
    answer, instance = await ask("are you still there?")
    assert answer == "v1: are you still there?"
    assert instance == f"deployment-{standby}"

    # -- redeploy the standby device to a new version, and read the history ------------------
    manifest_v2 = openai_manifest(REPLY_PREFIX="v2")
    v2 = await suite.upload(model["id"], "openai_echo", manifest_v2, "second")
    standby_device = next(dev for dev, dep in deployment_of.items() if dep == standby)
    redeployed = await suite.post(
        f"{suite.deployer}/v1/deployments",
        {"version_id": v2["id"], "device_ids": [standby_device]},
        status=201,
    )
    assert [d["id"] for d in redeployed["items"]] == [standby]
    await suite.wait_deployment(standby, version_id=v2["id"])

    async def answers_v2() -> bool:
        try:
            answer, _ = await ask("hello")
        except Exception:  # the gateway may still hold the old port for a moment
            return False
        return answer == "v2: hello"

    await wait_for(answers_v2, timeout=STEP_TIMEOUT_S, interval=0.5)
    history = await suite.get(f"{suite.deployer}/v1/deployments/{standby}/history")
    running_versions = [
        entry["version_id"]
        for entry in history["items"]
        if entry["source"] == "agent" and entry["state"] == "running"
    ]
    assert v1["id"] in running_versions
    assert v2["id"] in running_versions
    assert running_versions.index(v1["id"]) < running_versions.index(v2["id"])
    versions = await suite.get(f"{suite.deployer}/v1/models/{model['id']}/versions")
    assert sorted(v["id"] for v in versions["items"]) == sorted([v1["id"], v2["id"]])

    # -- a handlers-protocol project, called through the agent's local API -------------------
    scorer = await suite.post(
        f"{suite.registry}/v1/models",
        {"name": f"fraud-scorer-{suffix}", "learning_type": "supervised"},
        status=201,
    )
    handlers_version = await suite.upload(
        scorer["id"],
        "handlers_echo",
        {
            "image": MODEL_IMAGE,
            "language": "python3",
            "main": "main.py",
            "handlers": [{"name": "predict"}, {"name": "fail"}],
            "input_type": "json",
            "port": 8080,
            "max_ram_mb": 128,
            "cores": 0.5,
            "health_path": "/healthz",
            "protocol": "handlers",
        },
        "scorer",
    )
    placed = await suite.post(
        f"{suite.deployer}/v1/deployments",
        {"version_id": handlers_version["id"], "device_ids": [agent_a.device_id]},
        status=201,
    )
    await suite.wait_deployment(placed["items"][0]["id"], version_id=handlers_version["id"])
    local = await suite.get(f"{agent_a.url}/models")
    (status,) = [m for m in local["items"] if m["model_id"] == scorer["id"]]
    assert status["running"]
    assert sorted(status["handlers"]) == ["fail", "predict"]
    verdict = await suite.http.post(
        f"{agent_a.url}/models/{status['model_name']}/predict", json={"amount": 5000, "card": "x"}
    )
    assert verdict.status_code == 200, verdict.text
    assert verdict.json() == {"fraud": True, "fields": ["amount", "card"]}
    failure = await suite.http.post(
        f"{agent_a.url}/models/{status['model_name']}/fail", json={"amount": 1}
    )
    assert failure.status_code == 500
    assert failure.headers["content-type"].startswith("application/problem+json")
    assert "cannot score" in failure.text
