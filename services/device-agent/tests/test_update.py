"""Updating a running model: zero failed calls during the switch; a bad version rolls back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from uuid import UUID, uuid4

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
from modelyard_agent.containers.labels import LABEL_DEPLOYMENT
from modelyard_common.contracts import DeploymentState, VersionSpec

PROJECTS = Path(__file__).parent / "projects"


def echo_version(
    server: ArtifactServer, model_name: str, model_id: UUID, number: int
) -> VersionSpec:
    manifest = project_manifest(
        main="echo_model.py",
        handlers=[{"name": "predict"}],
        env={"MODEL_VERSION": str(number)},
    )
    data = zip_project(PROJECTS / "handlers_echo", {"VERSION": str(number).encode()})
    return version_spec(
        server, data, manifest, model_name=model_name, model_id=model_id, number=number
    )


def containers_of(client: docker.DockerClient, deployment_id: UUID) -> list[str]:
    label = f"{LABEL_DEPLOYMENT}={deployment_id}"
    found = client.containers.list(all=True, ignore_removed=True, filters={"label": label})
    return sorted(c.labels["io.modelyard.version"] for c in found)


async def test_update_switches_versions_without_a_failed_call(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    api_client: Callable[[Agent], httpx.AsyncClient],
    docker_engine: docker.DockerClient,
) -> None:
    agent = await make_agent()
    device, deployment_id, model_id = agent.settings.device_id, uuid4(), uuid4()
    model_name = f"echo-{uuid4().hex[:6]}"
    v1 = echo_version(artifact_server, model_name, model_id, 1)
    v2 = echo_version(artifact_server, model_name, model_id, 2)
    await probe.send(device_id=device, deployment_id=deployment_id, generation=1, version=v1)
    first = await probe.wait_state(deployment_id, DeploymentState.running, timeout_s=60)

    answers: list[tuple[int, str | None]] = []
    timings: list[tuple[float, float, str | None]] = []  # (started, ended, version) per call
    stop = asyncio.Event()

    async def keep_calling(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            started = time.monotonic()
            response = await client.post(f"/models/{model_name}/predict", json={"n": len(answers)})
            version = response.json().get("version") if response.status_code == 200 else None
            answers.append((response.status_code, version))
            timings.append((started, time.monotonic(), version))
            await asyncio.sleep(0.005)

    async with api_client(agent) as client:
        callers = [asyncio.create_task(keep_calling(client)) for _ in range(3)]
        try:
            await asyncio.sleep(0.3)
            await probe.send(
                device_id=device,
                deployment_id=deployment_id,
                generation=2,
                version=v2,
                previous_version=v1,
            )

            def serving_v2() -> bool:
                last = probe.last(deployment_id)
                return bool(
                    last and last.state is DeploymentState.running and last.version_id == v2.id
                )

            await probe.wait_for(serving_v2, timeout_s=60, what="v2 running")
            # Keep calling a little after the switch, while the old container is retired.
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            for caller in callers:
                with contextlib.suppress(asyncio.CancelledError):
                    await caller

    statuses = {status for status, _ in answers}
    assert statuses == {200}, [a for a in answers if a[0] != 200][:5]
    versions = [v for _, v in answers]
    assert "1" in versions
    assert "2" in versions
    # The switch is one assignment: once a v2 answer has come back, no call that starts later is
    # routed to v1 (calls already in flight to v1 may still finish after it).
    first_v2_done = min(ended for _, ended, v in timings if v == "2")
    late_v1 = [
        (started, ended) for started, ended, v in timings if v == "1" and started > first_v2_done
    ]
    assert late_v1 == []
    second = probe.last(deployment_id)
    assert second is not None
    assert second.host_port != first.host_port
    # The agent reports v2 running, then retires v1 (drains its calls, stops and removes its
    # container): on a busy machine that outlasts the second of calls above, so wait for it.
    v1_files = agent.settings.data_dir / "versions" / str(deployment_id) / str(v1.id)

    def retired() -> tuple[list[str], bool]:
        return containers_of(docker_engine, deployment_id), v1_files.exists()

    deadline = time.monotonic() + 30
    while (left := await asyncio.to_thread(retired)) != ([str(v2.id)], False):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert left == ([str(v2.id)], False)


async def test_never_healthy_version_keeps_the_old_one_serving(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    api_client: Callable[[Agent], httpx.AsyncClient],
    docker_engine: docker.DockerClient,
) -> None:
    agent = await make_agent(health_timeout_s=6.0)
    device, deployment_id, model_id = agent.settings.device_id, uuid4(), uuid4()
    model_name = f"echo-{uuid4().hex[:6]}"
    v1 = echo_version(artifact_server, model_name, model_id, 1)
    await probe.send(device_id=device, deployment_id=deployment_id, generation=1, version=v1)
    await probe.wait_state(deployment_id, DeploymentState.running, timeout_s=60)

    broken = version_spec(
        artifact_server,
        zip_project(PROJECTS / "never_healthy"),
        project_manifest(main="broken_model.py", handlers=[{"name": "predict"}]),
        model_name=model_name,
        model_id=model_id,
        number=2,
    )
    await probe.send(
        device_id=device,
        deployment_id=deployment_id,
        generation=2,
        version=broken,
        previous_version=v1,
    )
    rolled_back = await probe.wait_state(deployment_id, DeploymentState.rolled_back, timeout_s=60)
    states = probe.states(deployment_id)
    assert states[-2:] == [DeploymentState.failed, DeploymentState.rolled_back]
    failed = sorted(
        (r for r in probe.reports if r.deployment_id == deployment_id), key=lambda r: r.sequence
    )[-2]
    assert failed.version_id == broken.id
    assert "did not answer /healthz" in failed.message
    assert any("model weights missing" in line for line in failed.log_tail)
    assert rolled_back.version_id == v1.id

    async with api_client(agent) as client:
        answer = await client.post(f"/models/{model_name}/predict", json={"still": "here"})
        assert answer.status_code == 200
        assert answer.json()["version"] == "1"
    assert containers_of(docker_engine, deployment_id) == [str(v1.id)]
    assert not (agent.settings.data_dir / "versions" / str(deployment_id) / str(broken.id)).exists()

    # The bad generation is not retried by the periodic reconcile...
    reports_before = len(probe.states(deployment_id))
    await asyncio.sleep(2.5)
    assert len(probe.states(deployment_id)) == reports_before
    # ...and a newer command still gets through.
    v3 = echo_version(artifact_server, model_name, model_id, 3)
    await probe.send(
        device_id=device,
        deployment_id=deployment_id,
        generation=3,
        version=v3,
        previous_version=v1,
    )

    def serving_v3() -> bool:
        last = probe.last(deployment_id)
        return bool(last and last.state is DeploymentState.running and last.version_id == v3.id)

    await probe.wait_for(serving_v3, timeout_s=60, what="v3 running")
    # The old container is retired right after the switch is reported.
    await probe.wait_for(
        lambda: containers_of(docker_engine, deployment_id) == [str(v3.id)],
        timeout_s=15,
        what="only v3 left",
    )
