"""Fixtures: a real Docker Engine, the real broker (vhost `modelyard_test`), agents in-process."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import docker
import httpx
import pytest
from modelyard_testkit.agent import (
    AgentFactory,
    ArtifactServer,
    BrokerProbe,
    delete_device_queues,
    remove_device_leftovers,
)
from modelyard_testkit.testing import TEST_AMQP_URL, TEST_VHOST, ensure_vhost

from modelyard_agent.app import Agent, create_app
from modelyard_agent.settings import AgentSettings

REPO = Path(__file__).resolve().parents[3]
VHOST = TEST_VHOST
AMQP_URL = TEST_AMQP_URL
DEVICE_TOKEN = "device-token-for-tests"
BASE_IMAGE = "modelyard/python-base:bookworm"


@pytest.fixture(scope="package")
def docker_engine() -> Iterator[docker.DockerClient]:
    """Start Docker and build the base image if needed (the project's scripts do both)."""
    subprocess.run(["bash", str(REPO / "scripts" / "ensure-docker.sh")], check=True)
    subprocess.run(["bash", str(REPO / "scripts" / "ensure-base-image.sh")], check=True)
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture(scope="package")
def amqp_url() -> str:
    """Return the URL of the test vhost, created if missing."""
    ensure_vhost(VHOST)
    return AMQP_URL


@pytest.fixture(scope="package")
def artifact_server() -> Iterator[ArtifactServer]:
    """Serve zips like the deployer does, for the test device token."""
    server = ArtifactServer(token=DEVICE_TOKEN)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
async def probe(amqp_url: str) -> AsyncIterator[BrokerProbe]:
    """Send commands and read reports over the real broker."""
    broker_probe = BrokerProbe(amqp_url)
    await broker_probe.start()
    yield broker_probe
    await broker_probe.close()


def agent_settings(
    data_dir: Path, device_id: UUID, amqp_url: str, **overrides: Any
) -> AgentSettings:
    """Return settings tuned for fast tests (short intervals and timeouts)."""
    values: dict[str, Any] = {
        "device_id": device_id,
        "token": DEVICE_TOKEN,
        "data_dir": data_dir,
        "amqp_url": amqp_url,
        "reconcile_interval_s": 1.0,
        "heartbeat_interval_s": 1.0,
        "health_timeout_s": 15.0,
        "health_interval_s": 0.1,
        "backoff_initial_s": 0.5,
        "backoff_max_s": 2.0,
        "outbox_retry_s": 0.3,
        "stop_timeout_s": 2,
        "download_attempts": 3,
        "disk_margin_mb": 0,
        "ingress_port": 0,
        "log_json": False,
    }
    values.update(overrides)
    return AgentSettings(**values)


@pytest.fixture
async def make_agent(
    docker_engine: docker.DockerClient,
    amqp_url: str,
    tmp_path: Path,
    artifact_server: ArtifactServer,
) -> AsyncIterator[AgentFactory]:
    """Start in-process agents (each its own device unless told); clean up all they leave."""
    started: list[Agent] = []
    devices: set[UUID] = set()

    async def factory(
        device_id: UUID | None = None,
        data_dir: Path | None = None,
        *,
        wait_consuming: bool = True,
        **overrides: Any,
    ) -> Agent:
        device = device_id or uuid4()
        devices.add(device)
        settings = agent_settings(
            data_dir or tmp_path / f"agent-{device.hex[:8]}",
            device,
            overrides.pop("amqp_url", amqp_url),
            **{"deployer_url": artifact_server.origin, **overrides},
        )
        agent = Agent(settings)
        await agent.start()
        started.append(agent)
        if wait_consuming:
            # Commands sent before the agent declared its queue would be dropped by the broker.
            await asyncio.wait_for(agent.consuming.wait(), timeout=20)
        return agent

    yield factory
    # Every agent stops and every container and queue goes, even if one of them fails.
    errors: list[Exception] = []
    try:
        for agent in started:
            try:
                await agent.stop()
            except Exception as exc:
                errors.append(exc)
    finally:
        await asyncio.to_thread(remove_device_leftovers, docker_engine, devices)
        await delete_device_queues(amqp_url, devices)
    if errors:
        raise errors[0]


@pytest.fixture
def api_client() -> Callable[[Agent], httpx.AsyncClient]:
    """Return a factory of clients of an agent's local API (in-process ASGI)."""

    def client(agent: Agent) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(agent)), base_url="http://agent.local"
        )

    return client
