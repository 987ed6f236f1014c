"""Dockerfile projects, stop/start/restart/remove, and what reconciliation repairs or leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from uuid import UUID, uuid4

import docker
import httpx
from docker.models.containers import Container
from modelyard_testkit.agent import (
    AgentFactory,
    ArtifactServer,
    BrokerProbe,
    project_manifest,
    version_spec,
    zip_project,
)

from modelyard_agent.app import Agent
from modelyard_agent.containers.labels import (
    LABEL_DEPLOYMENT,
    LABEL_DEVICE,
    LABEL_MANAGED,
    LABEL_VERSION,
)
from modelyard_common.contracts import CommandAction, DeploymentState, DesiredState

PROJECTS = Path(__file__).parent / "projects"


def managed(client: docker.DockerClient, deployment_id: UUID) -> list[Container]:
    label = f"{LABEL_DEPLOYMENT}={deployment_id}"
    return client.containers.list(all=True, ignore_removed=True, filters={"label": label})


def built_images(client: docker.DockerClient, deployment_id: UUID) -> list[str]:
    images = client.images.list(filters={"label": f"{LABEL_DEPLOYMENT}={deployment_id}"})
    return [str(i.id) for i in images]


async def test_dockerfile_project_lifecycle_leaves_nothing_behind(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    api_client: Callable[[Agent], httpx.AsyncClient],
    docker_engine: docker.DockerClient,
) -> None:
    agent = await make_agent()
    device, deployment_id = agent.settings.device_id, uuid4()
    model_name = f"chat-{uuid4().hex[:6]}"
    version = version_spec(
        artifact_server,
        zip_project(PROJECTS / "dockerfile_server"),
        project_manifest(dockerfile=True, protocol="openai", port=9000),
        model_name=model_name,
        model_id=uuid4(),
        number=1,
    )

    async def command(generation: int, action: CommandAction, desired: DesiredState) -> None:
        await probe.send(
            device_id=device,
            deployment_id=deployment_id,
            generation=generation,
            version=version,
            action=action,
            desired_state=desired,
        )

    await command(1, CommandAction.deploy, DesiredState.running)
    await probe.wait_state(deployment_id, DeploymentState.running, timeout_s=120)
    assert DeploymentState.building in probe.states(deployment_id)
    assert len(built_images(docker_engine, deployment_id)) == 1

    chat = {"model": model_name, "messages": [{"role": "user", "content": "hello"}]}
    async with api_client(agent) as client:
        answer = await client.post(f"/models/{model_name}/v1/chat/completions", json=chat)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["choices"][0]["message"]["content"] == "HELLO"
        assert body["greeting"] == "built from a Dockerfile"

        # stop: the container stays (stopped), calls get a clear 503 problem.
        await command(2, CommandAction.stop, DesiredState.stopped)
        await probe.wait_state(deployment_id, DeploymentState.stopped)
        (container,) = managed(docker_engine, deployment_id)
        assert container.status == "exited"
        refused = await client.post(f"/models/{model_name}/v1/chat/completions", json=chat)
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["state"] == "stopped"

        # A stopped model stays stopped through periodic reconciles.
        await asyncio.sleep(1.5)
        (container,) = managed(docker_engine, deployment_id)
        assert container.status == "exited"

        # start
        await command(3, CommandAction.start, DesiredState.running)
        await probe.wait_state(deployment_id, DeploymentState.running)
        answer = await client.post(f"/models/{model_name}/v1/chat/completions", json=chat)
        assert answer.status_code == 200

        # restart: same container, started again.
        (container,) = managed(docker_engine, deployment_id)
        started_at = container.attrs["State"]["StartedAt"]
        reported = len(probe.states(deployment_id))
        await command(4, CommandAction.restart, DesiredState.running)
        await probe.wait_for(
            lambda: (
                probe.states(deployment_id)[reported:]
                == [DeploymentState.starting, DeploymentState.running]
            ),
            what="restart reported",
        )
        (restarted,) = managed(docker_engine, deployment_id)
        assert restarted.id == container.id
        assert restarted.attrs["State"]["StartedAt"] != started_at

        # remove: container, built image and files all gone.
        await command(5, CommandAction.remove, DesiredState.removed)
        await probe.wait_state(deployment_id, DeploymentState.removed)
        assert probe.states(deployment_id)[-2:] == [
            DeploymentState.removing,
            DeploymentState.removed,
        ]
        assert managed(docker_engine, deployment_id) == []
        assert built_images(docker_engine, deployment_id) == []
        assert not (agent.settings.data_dir / "versions" / str(deployment_id)).exists()
        assert list((agent.settings.data_dir / "downloads").glob("*")) == []
        assert (await client.get("/models")).json()["items"] == []
        gone = await client.post(f"/models/{model_name}/v1/chat/completions", json=chat)
        assert gone.status_code == 404

    # A replayed older command cannot bring the removed deployment back.
    await command(3, CommandAction.start, DesiredState.running)
    await asyncio.sleep(1.5)
    assert managed(docker_engine, deployment_id) == []
    assert probe.states(deployment_id)[-1] is DeploymentState.removed


async def test_reconcile_repairs_managed_containers_and_ignores_others(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    api_client: Callable[[Agent], httpx.AsyncClient],
    docker_engine: docker.DockerClient,
) -> None:
    agent = await make_agent()
    device, deployment_id = agent.settings.device_id, uuid4()
    model_name = f"echo-{uuid4().hex[:6]}"
    image = "modelyard/python-base:bookworm"
    sleeper = ["python3", "-c", "import time; time.sleep(600)"]
    # Not labelled as managed: never touched. Managed by this device but unknown: an orphan.
    bystander = docker_engine.containers.run(image, sleeper, detach=True, init=True)
    orphan: Container = docker_engine.containers.run(
        image,
        sleeper,
        detach=True,
        init=True,
        labels={LABEL_MANAGED: "true", LABEL_DEVICE: str(device), LABEL_DEPLOYMENT: str(uuid4())},
    )
    try:
        version = version_spec(
            artifact_server,
            zip_project(PROJECTS / "handlers_echo"),
            project_manifest(main="echo_model.py", handlers=[{"name": "predict"}]),
            model_name=model_name,
            model_id=uuid4(),
            number=1,
        )
        await probe.send(
            device_id=device, deployment_id=deployment_id, generation=1, version=version
        )
        first = await probe.wait_state(deployment_id, DeploymentState.running, timeout_s=60)

        # Killed and removed from outside: reconciliation brings it back.
        (container,) = managed(docker_engine, deployment_id)
        container.remove(force=True)
        await probe.wait_for(
            lambda: (
                (probe.last(deployment_id) or first).sequence > first.sequence
                and probe.states(deployment_id)[-1] is DeploymentState.running
            ),
            timeout_s=30,
            what="the model running again",
        )
        (revived,) = managed(docker_engine, deployment_id)
        assert revived.id != container.id
        assert revived.labels[LABEL_VERSION] == str(version.id)
        async with api_client(agent) as client:
            answer = await client.post(f"/models/{model_name}/predict", json=[1])
            assert answer.status_code == 200

        # Stopped from outside (a kill the restart policy does not undo): started again.
        revived.stop(timeout=0)
        await probe.wait_for(
            lambda: managed(docker_engine, deployment_id)[0].status == "running",
            timeout_s=30,
            what="the stopped container started again",
        )

        await probe.wait_for(
            lambda: (
                not docker_engine.containers.list(
                    all=True, ignore_removed=True, filters={"id": str(orphan.id)}
                )
            ),
            timeout_s=15,
            what="the orphan removed",
        )
        bystander.reload()
        assert bystander.status == "running"
    finally:
        bystander.remove(force=True)
        for leftover in docker_engine.containers.list(
            all=True, ignore_removed=True, filters={"id": str(orphan.id)}
        ):
            leftover.remove(force=True)
