"""Reports made while the broker is unreachable wait on disk and arrive later, in order.

Two outages: every connection between agent and broker cut by a TCP proxy that also refuses new
ones (the network drops), and a real RabbitMQ restart (a private node of the test's own, stopped
and started again; durable quorum queues survive it). Either way the agent's robust connection
reconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit
from uuid import uuid4

import docker
import pytest
from modelyard_testkit.agent import (
    AgentFactory,
    ArtifactServer,
    BrokerProbe,
    TcpProxy,
    project_manifest,
    version_spec,
    zip_project,
)
from modelyard_testkit.servers import PrivateRabbit

from modelyard_agent.app import Agent
from modelyard_agent.containers.labels import LABEL_DEPLOYMENT
from modelyard_common.contracts import CommandAction, DeploymentState, DesiredState

PROJECTS = Path(__file__).parent / "projects"
Step = Callable[[], Awaitable[None]]


async def _reports_survive(
    agent: Agent,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    docker_engine: docker.DockerClient,
    *,
    go_down: Step,
    come_back: Step,
) -> None:
    deployment_id = uuid4()
    version = version_spec(
        artifact_server,
        zip_project(PROJECTS / "handlers_echo"),
        project_manifest(main="echo_model.py", handlers=[{"name": "predict"}]),
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
    before = await probe.wait_state(deployment_id, DeploymentState.running, timeout_s=60)

    await go_down()
    try:
        # Something worth reporting happens during the outage: the container is removed from
        # outside, and the agent brings it back (starting, running).
        label = f"{LABEL_DEPLOYMENT}={deployment_id}"
        for container in docker_engine.containers.list(
            all=True, ignore_removed=True, filters={"label": label}
        ):
            container.remove(force=True)

        def recovered_offline() -> bool:
            record = agent.store.get(deployment_id)
            return (
                record is not None
                and record.sequence >= before.sequence + 2
                and record.state is DeploymentState.running
            )

        await probe.wait_for(
            recovered_offline, timeout_s=30, what="the agent recovering during the outage"
        )
        await asyncio.sleep(0.5)
        assert agent.outbox.pending() >= 2
        assert probe.last(deployment_id) == before  # nothing got through
    finally:
        await come_back()

    held = agent.store.get(deployment_id)
    assert held is not None
    await probe.wait_for(
        lambda: (probe.last(deployment_id) or before).sequence == held.sequence,
        timeout_s=45,
        what="spooled reports delivered",
    )
    # Nothing lost, in order (a report whose confirm was lost in the cut may come twice,
    # under the same event id, the deployer's idempotency key).
    delivered = probe.delivered_sequences(deployment_id)
    assert delivered == list(range(1, held.sequence + 1))
    assert probe.states(deployment_id)[-2:] == [
        DeploymentState.starting,
        DeploymentState.running,
    ]
    # A file is deleted right after its confirm, which may come just after the delivery.
    await probe.wait_for(lambda: agent.outbox.pending() == 0, timeout_s=5, what="empty spool")

    # The command consumer resumed on the new connection too.
    await probe.send(
        device_id=agent.settings.device_id,
        deployment_id=deployment_id,
        generation=2,
        version=version,
        action=CommandAction.stop,
        desired_state=DesiredState.stopped,
    )
    await probe.wait_state(deployment_id, DeploymentState.stopped, timeout_s=45)


async def test_reports_survive_a_cut_connection_in_order(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    docker_engine: docker.DockerClient,
    amqp_url: str,
) -> None:
    broker = urlsplit(amqp_url)  # the test broker (MODELYARD_TEST_AMQP_URL), not a fixed port
    proxy = TcpProxy(broker.hostname or "127.0.0.1", broker.port or 5672)
    await proxy.start()
    vhost = amqp_url.rsplit("/", 1)[-1]
    agent = await make_agent(
        amqp_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/{vhost}?reconnect_interval=0.5"
    )
    try:
        await _reports_survive(
            agent, probe, artifact_server, docker_engine, go_down=proxy.cut, come_back=proxy.start
        )
    finally:
        await proxy.cut()


@pytest.fixture
async def private_rabbit() -> AsyncIterator[PrivateRabbit]:
    """A RabbitMQ node of this test's own: restarting it disturbs no other test or service."""
    server = await asyncio.to_thread(lambda: PrivateRabbit().start())
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@pytest.mark.timeout(240)
async def test_reports_survive_a_rabbitmq_restart_in_order(
    private_rabbit: PrivateRabbit,
    make_agent: AgentFactory,
    artifact_server: ArtifactServer,
    docker_engine: docker.DockerClient,
) -> None:
    # The agent logs in as guest here, so it declares the topology itself (as a development
    # broker allows); the probe plays the deployer on the same private node.
    probe = BrokerProbe(private_rabbit.url)
    await probe.start()
    agent = await make_agent(amqp_url=f"{private_rabbit.url}?reconnect_interval=0.5")

    async def stop_broker() -> None:
        await asyncio.to_thread(private_rabbit.stop)

    async def start_broker() -> None:
        await asyncio.to_thread(private_rabbit.start)

    try:
        await _reports_survive(
            agent,
            probe,
            artifact_server,
            docker_engine,
            go_down=stop_broker,
            come_back=start_broker,
        )
    finally:
        await probe.close()
