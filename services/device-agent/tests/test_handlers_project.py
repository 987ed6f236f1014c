"""A handlers-protocol project deployed by command and called through the local API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import docker
import httpx
from modelyard_testkit.agent import (
    AgentFactory,
    ArtifactServer,
    BrokerProbe,
    project_manifest,
    version_spec,
    zip_project,
)

from modelyard_agent.app import Agent
from modelyard_agent.containers.labels import LABEL_DEPLOYMENT, LABEL_MANAGED
from modelyard_common.contracts import DeploymentState
from modelyard_common.manifest import Manifest

PROJECTS = Path(__file__).parent / "projects"


def echo_manifest(**changes: object) -> Manifest:
    return project_manifest(
        main="echo_model.py", handlers=[{"name": "predict"}, {"name": "explode"}], **changes
    )


async def test_handlers_project_serves_through_local_api(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    api_client: Callable[[Agent], httpx.AsyncClient],
    docker_engine: docker.DockerClient,
) -> None:
    agent = await make_agent()
    model_name = f"echo-{uuid4().hex[:6]}"
    deployment_id = uuid4()
    version = version_spec(
        artifact_server,
        zip_project(PROJECTS / "handlers_echo"),
        echo_manifest(max_ram_mb=96, cores=0.5),
        model_name=model_name,
        model_id=uuid4(),
        number=1,
    )
    await probe.send(
        device_id=agent.settings.device_id,
        deployment_id=deployment_id,
        generation=1,
        version=version,
    )
    report = await probe.wait_state(deployment_id, DeploymentState.running, timeout_s=60)
    assert probe.states(deployment_id) == [
        DeploymentState.downloading,
        DeploymentState.verifying,
        DeploymentState.building,
        DeploymentState.starting,
        DeploymentState.running,
    ]
    assert report.host_port is not None
    # The agent no longer says where it can be reached: the deployer builds endpoint URLs from
    # the device record, and every report carries the data dir's epoch.
    assert report.base_url is None
    assert report.agent_epoch == agent.agent_epoch

    async with api_client(agent) as client:
        answer = await client.post(f"/models/{model_name}/predict", json={"x": [1, 2, 3]})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"version": "1", "echo": {"x": [1, 2, 3]}}

        failing = await client.post(f"/models/{model_name}/explode", json={"x": 1})
        assert failing.status_code == 500
        assert failing.headers["content-type"] == "application/problem+json"
        assert "cannot handle" in failing.json()["detail"]

        unknown = await client.post("/models/no-such-model/predict", json={})
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/problem+json"

        listing = (await client.get("/models")).json()["items"]
        assert listing[0]["handlers"] == ["predict", "explode"]
        assert [(m["model_name"], m["state"], m["version_number"]) for m in listing] == [
            (model_name, "running", 1)
        ]
        logs = await client.get(f"/models/{model_name}/logs", params={"tail": 20})
        assert any("serving on port 8080" in line for line in logs.json()["lines"])
        assert (await client.get("/healthz")).json()["status"] == "ok"

    # The container carries the manifest's limits, the managed labels and a loopback-only port.
    (container,) = docker_engine.containers.list(
        filters={"label": [f"{LABEL_DEPLOYMENT}={deployment_id}", f"{LABEL_MANAGED}=true"]}
    )
    host_config = container.attrs["HostConfig"]
    assert host_config["Memory"] == 96 * 1024 * 1024
    assert host_config["NanoCpus"] == 500_000_000
    assert host_config["RestartPolicy"]["Name"] == "on-failure"
    bindings = host_config["PortBindings"]["8080/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(report.host_port)}]
    mounts = {m["Destination"]: m["RW"] for m in container.attrs["Mounts"]}
    assert mounts == {
        "/opt/modelyard/project": False,
        "/opt/modelyard/runtime/modelyard_handlers.py": False,
    }

    # input_type image: the handler gets the raw request bytes.
    image_model = f"pixels-{uuid4().hex[:6]}"
    image_deployment = uuid4()
    image_version = version_spec(
        artifact_server,
        zip_project(PROJECTS / "handlers_echo"),
        project_manifest(main="echo_model.py", handlers=[{"name": "size"}], input_type="image"),
        model_name=image_model,
        model_id=uuid4(),
        number=1,
    )
    await probe.send(
        device_id=agent.settings.device_id,
        deployment_id=image_deployment,
        generation=1,
        version=image_version,
    )
    await probe.wait_state(image_deployment, DeploymentState.running, timeout_s=60)
    async with api_client(agent) as client:
        picture = bytes(range(256)) * 40
        sized = await client.post(
            f"/models/{image_model}/size", content=picture, headers={"content-type": "image/png"}
        )
        assert sized.status_code == 200, sized.text
        assert sized.json() == {"bytes": len(picture)}
        assert sized.headers["x-modelyard-version"] == str(image_version.id)
        names = [m["model_name"] for m in (await client.get("/models")).json()["items"]]
        assert sorted(names) == sorted([model_name, image_model])

    # The heartbeat carries the device's capabilities.
    device = str(agent.settings.device_id)
    await probe.wait_for(
        lambda: any(h["device_id"] == device for h in probe.heartbeats), what="a heartbeat"
    )
    heartbeat = next(h for h in probe.heartbeats if h["device_id"] == device)
    capabilities = heartbeat["capabilities"]
    assert capabilities["docker_version"]
    assert capabilities["arch"]
    assert capabilities["cpus"] >= 1
    assert capabilities["ram_mb"] > 0
    assert capabilities["disk_free_mb"] > 0
