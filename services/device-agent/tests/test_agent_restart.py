"""The agent process killed with SIGKILL mid-download or mid-start ends in the desired state.

The agent runs as a real `python -m modelyard_agent serve` process here, so SIGKILL really
drops everything in memory; only what it wrote to its data directory survives.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO
from uuid import UUID, uuid4

import docker
import httpx
import pytest
from modelyard_testkit.agent import (
    ArtifactServer,
    BrokerProbe,
    delete_device_queues,
    project_manifest,
    remove_device_leftovers,
    version_spec,
    zip_project,
)

from modelyard_agent.containers.labels import LABEL_DEPLOYMENT
from modelyard_agent.containers.specs import free_loopback_port
from modelyard_common.contracts import DeploymentState

PROJECTS = Path(__file__).parent / "projects"
DEVICE_TOKEN = "device-token-for-tests"


class AgentProcess:
    """Starts and kills `modelyard-agent serve` processes sharing one device and data dir."""

    def __init__(
        self, data_dir: Path, device_id: UUID, amqp_url: str, log: IO[bytes], deployer_url: str
    ) -> None:
        self.deployer_url = deployer_url
        self.data_dir = data_dir
        self.device_id = device_id
        self.amqp_url = amqp_url
        self.log = log
        self.port = free_loopback_port()
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        env = {
            **os.environ,
            "MODELYARD_AGENT_DEVICE_ID": str(self.device_id),
            "MODELYARD_AGENT_TOKEN": DEVICE_TOKEN,
            "MODELYARD_AGENT_DATA_DIR": str(self.data_dir),
            "MODELYARD_AMQP_URL": self.amqp_url,
            "MODELYARD_AGENT_RECONCILE_INTERVAL_S": "1",
            "MODELYARD_AGENT_HEARTBEAT_INTERVAL_S": "5",
            "MODELYARD_AGENT_HEALTH_TIMEOUT_S": "30",
            "MODELYARD_AGENT_HEALTH_INTERVAL_S": "0.1",
            "MODELYARD_AGENT_BACKOFF_INITIAL_S": "0.5",
            "MODELYARD_AGENT_BACKOFF_MAX_S": "2",
            "MODELYARD_AGENT_OUTBOX_RETRY_S": "0.3",
            "MODELYARD_AGENT_DISK_MARGIN_MB": "0",
            "MODELYARD_LOG_JSON": "false",
            "MODELYARD_AGENT_DEPLOYER_URL": self.deployer_url,
            "MODELYARD_AGENT_INGRESS_PORT": "0",
        }
        self.process = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "modelyard_agent", "serve", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                if self.process.poll() is not None:
                    raise RuntimeError(f"agent exited with {self.process.returncode}")
                try:
                    ready = await client.get(f"http://127.0.0.1:{self.port}/readyz")
                    if ready.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError("agent did not become ready")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
async def agent_process(
    tmp_path: Path,
    amqp_url: str,
    docker_engine: docker.DockerClient,
    artifact_server: ArtifactServer,
) -> AsyncIterator[AgentProcess]:
    device_id = uuid4()
    with (tmp_path / "agent.log").open("wb") as log:
        agent = AgentProcess(tmp_path / "data", device_id, amqp_url, log, artifact_server.origin)
        try:
            yield agent
        finally:
            agent.terminate()
            await delete_device_queues(amqp_url, {device_id})
            remove_device_leftovers(docker_engine, {device_id})
    print((tmp_path / "agent.log").read_text(errors="replace")[-3000:])


def containers_of(client: docker.DockerClient, deployment_id: UUID) -> list[str]:
    label = f"{LABEL_DEPLOYMENT}={deployment_id}"
    found = client.containers.list(all=True, ignore_removed=True, filters={"label": label})
    return [c.status for c in found]


def assert_sequences_grow(probe: BrokerProbe, deployment_id: UUID) -> None:
    """Reports of the killed and the restarted agent arrive in one growing sequence."""
    delivered = probe.delivered_sequences(deployment_id)
    assert delivered == sorted(set(delivered)), delivered


async def call(agent: AgentProcess, model_name: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"http://127.0.0.1:{agent.port}/models/{model_name}/predict", json={"ping": 1}
        )


async def test_killed_mid_download_resumes_and_runs(
    agent_process: AgentProcess,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    docker_engine: docker.DockerClient,
) -> None:
    await agent_process.start()
    deployment_id, model_name = uuid4(), f"echo-{uuid4().hex[:6]}"
    # Incompressible weights make the zip big enough to interrupt.
    data = zip_project(PROJECTS / "handlers_echo", {"weights.bin": os.urandom(3 * 1024 * 1024)})
    version = version_spec(
        artifact_server,
        data,
        project_manifest(main="echo_model.py", handlers=[{"name": "predict"}]),
        model_name=model_name,
        model_id=uuid4(),
        number=1,
    )
    key = version.artifact_url.rsplit("/", 1)[-1]
    artifact_server.throttle[key] = (32 * 1024, 0.05)
    await probe.send(
        device_id=agent_process.device_id,
        deployment_id=deployment_id,
        generation=1,
        version=version,
    )
    partial = agent_process.data_dir / "downloads" / f"{deployment_id}-{version.id}.zip.part"
    await probe.wait_for(
        lambda: partial.exists() and partial.stat().st_size > 256 * 1024,
        timeout_s=30,
        what="download under way",
    )
    agent_process.kill()
    assert 0 < partial.stat().st_size < len(data)

    del artifact_server.throttle[key]
    await agent_process.start()
    await probe.wait_state(deployment_id, DeploymentState.running, timeout_s=60)
    ranges = [r for k, r, status in artifact_server.requests if k == key and status == 206]
    assert ranges, artifact_server.requests
    first_range = ranges[0]
    assert first_range is not None
    assert first_range.startswith("bytes=")
    assert int(first_range[6:].rstrip("-")) > 0
    answer = await call(agent_process, model_name)
    assert answer.status_code == 200
    assert containers_of(docker_engine, deployment_id) == ["running"]
    assert_sequences_grow(probe, deployment_id)


async def test_killed_mid_start_ends_running_once(
    agent_process: AgentProcess,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    docker_engine: docker.DockerClient,
) -> None:
    await agent_process.start()
    deployment_id, model_name = uuid4(), f"echo-{uuid4().hex[:6]}"
    version = version_spec(
        artifact_server,
        zip_project(PROJECTS / "handlers_echo"),
        project_manifest(
            main="echo_model.py", handlers=[{"name": "predict"}], env={"STARTUP_DELAY": "3"}
        ),
        model_name=model_name,
        model_id=uuid4(),
        number=1,
    )
    await probe.send(
        device_id=agent_process.device_id,
        deployment_id=deployment_id,
        generation=1,
        version=version,
    )
    await probe.wait_state(deployment_id, DeploymentState.starting, timeout_s=30)
    await probe.wait_for(
        lambda: containers_of(docker_engine, deployment_id) == ["running"],
        timeout_s=10,
        what="container created",
    )
    agent_process.kill()

    await agent_process.start()
    await probe.wait_state(deployment_id, DeploymentState.running, timeout_s=60)
    answer = await call(agent_process, model_name)
    assert answer.status_code == 200
    assert containers_of(docker_engine, deployment_id) == ["running"]
    assert_sequences_grow(probe, deployment_id)
