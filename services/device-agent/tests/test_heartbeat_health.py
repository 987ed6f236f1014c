"""Heartbeats carry each deployment's health: last probe, restarts, memory and CPU use."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
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
from modelyard_common.contracts import DeploymentHealth, DeploymentState

PROJECTS = Path(__file__).parent / "projects"


def health_in_heartbeats(probe: BrokerProbe, agent: Agent, deployment_id: UUID) -> list[Any]:
    """Return the deployment's health from each heartbeat of the agent, oldest first."""
    found = []
    for heartbeat in probe.heartbeats:
        if heartbeat["device_id"] != str(agent.settings.device_id):
            continue
        for entry in heartbeat["deployments"]:
            if entry["deployment_id"] == str(deployment_id) and "health" in entry:
                found.append(DeploymentHealth.model_validate(entry["health"]))
    return found


async def test_heartbeats_carry_probe_restarts_memory_and_cpu(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    docker_engine: docker.DockerClient,
    api_client: Callable[[Agent], httpx.AsyncClient],
) -> None:
    agent = await make_agent()
    deployment_id = uuid4()
    version = version_spec(
        artifact_server,
        zip_project(PROJECTS / "handlers_echo"),
        project_manifest(
            main="echo_model.py", handlers=[{"name": "predict"}, {"name": "crash"}], max_ram_mb=96
        ),
        model_name=f"echo-{uuid4().hex[:6]}",
        model_id=uuid4(),
        number=1,
    )
    await probe.send(
        device_id=agent.settings.device_id,
        deployment_id=deployment_id,
        generation=1,
        version=version,
    )
    await probe.wait_state(deployment_id, DeploymentState.running, timeout_s=60)

    def latest() -> DeploymentHealth | None:
        found = health_in_heartbeats(probe, agent, deployment_id)
        return found[-1] if found else None

    def sampled() -> bool:
        health = latest()
        return health is not None and health.probe_ok is True and health.cpu_percent is not None

    # CPU use needs two samples: two heartbeats after the container started.
    await probe.wait_for(sampled, timeout_s=15, what="a full health sample")
    health = latest()
    assert health is not None
    assert health.probe_status == 200
    assert health.probed_at is not None
    assert health.restarts == 0
    assert health.memory_mb is not None
    assert 0 < health.memory_mb < 96
    assert health.memory_limit_mb == 96
    assert health.cpu_percent is not None
    assert 0 <= health.cpu_percent < 100

    # A paused container does not answer its health path.
    (container,) = docker_engine.containers.list(
        filters={"label": f"{LABEL_DEPLOYMENT}={deployment_id}"}
    )
    seen = len(health_in_heartbeats(probe, agent, deployment_id))
    container.pause()
    try:

        def probe_failed() -> bool:
            later = health_in_heartbeats(probe, agent, deployment_id)[seen:]
            return any(h.probe_ok is False for h in later)

        await probe.wait_for(probe_failed, timeout_s=15, what="a failed probe")
    finally:
        container.unpause()
    later = health_in_heartbeats(probe, agent, deployment_id)[seen:]
    failed = next(h for h in later if h.probe_ok is False)
    assert failed.probe_error
    assert failed.probe_status is None

    # The model's process dies; Docker restarts it, and heartbeats count it.
    async with api_client(agent) as client:
        # The answer may be an error or a dropped connection: the process dies mid-call.
        with contextlib.suppress(httpx.HTTPError):
            await client.post(f"/models/{version.model_name}/crash", json={})

    def restarted_and_healthy() -> bool:
        health = latest()
        return health is not None and (health.restarts or 0) >= 1 and health.probe_ok is True

    await probe.wait_for(restarted_and_healthy, timeout_s=30, what="a counted restart")
