"""Model containers are fenced (issue 18, finding 8), on the real Docker Engine.

Each deployment has its own bridge network, so a model cannot call another one directly (only
through the agent, which reaches every container on its loopback-published port); a model runs
as an unprivileged user with no capabilities, a read-only root file system, a pids limit and a
CPU limit that never becomes "unlimited".
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import docker
import httpx
import pytest
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
from modelyard_agent.containers.labels import LABEL_DEPLOYMENT, LABEL_DEVICE, LABEL_MANAGED
from modelyard_agent.containers.runtime import DockerRuntime
from modelyard_agent.containers.specs import (
    MIN_NANO_CPUS,
    UNPRIVILEGED_USER,
    ContainerSpec,
    Fence,
    free_loopback_port,
    nano_cpus,
)
from modelyard_agent.workloads.naming import network_name
from modelyard_common.contracts import DeploymentState, DesiredState, VersionSpec
from modelyard_common.manifest import Manifest

PROJECTS = Path(__file__).parent / "projects"
BASE_IMAGE = "modelyard/python-base:bookworm"

# Run inside a model container: try to open a TCP connection to each (host, port); print one
# line per target, "open" or the error. The agent is not involved: this is a model calling
# another model directly, skipping the ingress and its credential.
CONNECT = """
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        print(target, "open")
    except OSError as exc:
        print(target, type(exc).__name__)
"""


def managed(client: docker.DockerClient, deployment_id: UUID) -> Container:
    (container,) = client.containers.list(
        filters={"label": [f"{LABEL_DEPLOYMENT}={deployment_id}", f"{LABEL_MANAGED}=true"]}
    )
    return container


def addresses(container: Container) -> list[str]:
    networks = container.attrs["NetworkSettings"]["Networks"] or {}
    return [n["IPAddress"] for n in networks.values() if n.get("IPAddress")]


def gateways(container: Container) -> list[str]:
    networks = container.attrs["NetworkSettings"]["Networks"] or {}
    return [n["Gateway"] for n in networks.values() if n.get("Gateway")]


def connect_from(container: Container, targets: list[str]) -> dict[str, str]:
    """Return target -> "open" or the error, as seen from inside `container`."""
    code, output = container.exec_run(["python3", "-c", CONNECT, *targets])
    assert code == 0, output
    lines = output.decode().split()
    return dict(zip(lines[::2], lines[1::2], strict=True))


async def deploy(
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    agent: Agent,
    project: str,
    manifest: Manifest,
) -> tuple[UUID, VersionSpec]:
    deployment_id = uuid4()
    version = version_spec(
        artifact_server,
        zip_project(PROJECTS / project),
        manifest,
        model_name=f"fenced-{uuid4().hex[:6]}",
        model_id=uuid4(),
        number=1,
    )
    await probe.send(
        device_id=agent.settings.device_id,
        deployment_id=deployment_id,
        generation=1,
        version=version,
    )
    await probe.wait_state(deployment_id, DeploymentState.running, timeout_s=120)
    return deployment_id, version


def echo_manifest(**values: Any) -> Manifest:
    return project_manifest(main="echo_model.py", handlers=[{"name": "predict"}], **values)


async def test_a_model_cannot_call_another_model_directly_only_through_the_agent(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    api_client: Callable[[Agent], httpx.AsyncClient],
    docker_engine: docker.DockerClient,
    adversarial_tally: Any,
) -> None:
    agent = await make_agent()
    first, first_version = await deploy(
        probe, artifact_server, agent, "handlers_echo", echo_manifest()
    )
    second, second_version = await deploy(
        probe, artifact_server, agent, "handlers_echo", echo_manifest()
    )
    a, b = managed(docker_engine, first), managed(docker_engine, second)

    # Each deployment has its own labelled bridge network; containers on it cannot talk to each
    # other either (an old and a new version during an update).
    for deployment_id, container in ((first, a), (second, b)):
        assert container.attrs["HostConfig"]["NetworkMode"] == network_name(deployment_id)
        network = docker_engine.networks.get(network_name(deployment_id))
        assert network.attrs["Labels"] == {
            LABEL_MANAGED: "true",
            LABEL_DEVICE: str(agent.settings.device_id),
            LABEL_DEPLOYMENT: str(deployment_id),
        }
        assert network.attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"
        assert network.attrs["Internal"] is False

    # The probe works: each container reaches its own server.
    assert connect_from(a, ["127.0.0.1:8080"]) == {"127.0.0.1:8080": "open"}
    assert connect_from(b, ["127.0.0.1:8080"]) == {"127.0.0.1:8080": "open"}

    # A model calling the other directly: by its container address, and by the host side of its
    # loopback-only published port through the container's gateway. Both ways round.
    b_port = b.attrs["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"]
    a_port = a.attrs["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"]
    from_a = [f"{ip}:8080" for ip in addresses(b)] + [f"{gw}:{b_port}" for gw in gateways(a)]
    from_b = [f"{ip}:8080" for ip in addresses(a)] + [f"{gw}:{a_port}" for gw in gateways(b)]
    seen = {**connect_from(a, from_a), **connect_from(b, from_b)}
    reached = [target for target, outcome in seen.items() if outcome == "open"]
    adversarial_tally.add(probes=len(seen), server_errors=0, gate_bypasses=len(reached))
    assert len(seen) == len(from_a) + len(from_b) >= 4
    assert reached == [], f"a model reached another directly: {seen}"

    # The agent still reaches both, through its local API.
    async with api_client(agent) as client:
        for version in (first_version, second_version):
            answer = await client.post(f"/models/{version.model_name}/predict", json={"x": 1})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"version": "1", "echo": {"x": 1}}


async def test_model_containers_are_unprivileged_capless_and_limited(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    api_client: Callable[[Agent], httpx.AsyncClient],
    docker_engine: docker.DockerClient,
    tmp_path: Path,
) -> None:
    # An agent whose umask keeps its files private still gives the unprivileged user a readable
    # project and wrapper.
    umask = os.umask(0o077)
    try:
        agent = await make_agent(container_pids_limit=200)
        mounted, mounted_version = await deploy(
            probe, artifact_server, agent, "handlers_echo", echo_manifest(cores=0.25)
        )
    finally:
        os.umask(umask)
    # A project on the base image (mounted read-only, above) and one built from its Dockerfile
    # (the handler reads weights its build step wrote in the WORKDIR): both serve.
    built, built_version = await deploy(
        probe,
        artifact_server,
        agent,
        "dockerfile_handlers",
        project_manifest(dockerfile=True, main="model.py", handlers=[{"name": "predict"}]),
    )
    async with api_client(agent) as client:
        answer = await client.post(f"/models/{mounted_version.model_name}/predict", json=[1])
        assert answer.status_code == 200, answer.text
        answer = await client.post(f"/models/{built_version.model_name}/predict", json=[2])
        assert answer.status_code == 200, answer.text
        assert answer.json()["weights"] == "trained at build time"

    for deployment_id in (mounted, built):
        container = managed(docker_engine, deployment_id)
        host_config = container.attrs["HostConfig"]
        assert container.attrs["Config"]["User"] == UNPRIVILEGED_USER
        assert host_config["CapDrop"] == ["ALL"]
        assert not host_config["CapAdd"]
        assert host_config["SecurityOpt"] == ["no-new-privileges"]
        assert host_config["PidsLimit"] == 200
        assert host_config["ReadonlyRootfs"] is True
        assert host_config["Tmpfs"] == {"/tmp": "rw,nosuid,nodev,size=256m,mode=1777"}
        assert host_config["Privileged"] is False
        # From inside: not root, no capabilities, nothing writable but /tmp.
        code, output = container.exec_run(
            [
                "sh",
                "-c",
                "id -u; grep CapEff /proc/self/status; echo $HOME; "
                "touch /opt/x 2>/dev/null || echo rootfs-ro; touch /tmp/x && echo tmp-rw",
            ]
        )
        assert code == 0, output
        lines = output.decode().split("\n")
        assert lines[0] == "65534"
        assert lines[1].split() == ["CapEff:", "0000000000000000"]
        assert lines[2] == "/tmp"
        assert lines[3:5] == ["rootfs-ro", "tmp-rw"]
    assert managed(docker_engine, mounted).attrs["HostConfig"]["NanoCpus"] == 250_000_000

    # A fork bomb stops at the pids limit instead of taking the device down.
    container = managed(docker_engine, mounted)
    code, output = container.exec_run(
        [
            "python3",
            "-c",
            "import threading, time\n"
            "n = 0\n"
            "try:\n"
            "    while n < 1000:\n"
            "        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
            "        n += 1\n"
            "except RuntimeError:\n"
            "    pass\n"
            "print(n)",
        ]
    )
    assert code == 0, output
    assert int(output.decode().split()[-1]) < 200

    # An image whose Dockerfile names a non-root user keeps it.
    project = tmp_path / "own_user"
    project.mkdir()
    (project / "model.py").write_text("def predict(payload):\n    return payload\n")
    (project / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nWORKDIR /app\nCOPY model.py /app/model.py\nUSER 4321:4321\n"
    )
    own_user = uuid4()
    version = version_spec(
        artifact_server,
        zip_project(project),
        project_manifest(dockerfile=True, main="model.py", handlers=[{"name": "predict"}]),
        model_name=f"fenced-{uuid4().hex[:6]}",
        model_id=uuid4(),
        number=1,
    )
    await probe.send(
        device_id=agent.settings.device_id, deployment_id=own_user, generation=1, version=version
    )
    await probe.wait_state(own_user, DeploymentState.running, timeout_s=120)
    container = managed(docker_engine, own_user)
    assert container.attrs["Config"]["User"] == "4321:4321"
    assert container.attrs["HostConfig"]["CapDrop"] == ["ALL"]


async def test_a_manifest_may_opt_out_of_the_unprivileged_user(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    docker_engine: docker.DockerClient,
) -> None:
    agent = await make_agent()
    deployment_id, _version = await deploy(
        probe, artifact_server, agent, "handlers_echo", echo_manifest(run_as_root=True)
    )
    container = managed(docker_engine, deployment_id)
    host_config = container.attrs["HostConfig"]
    assert container.attrs["Config"]["User"] == "0:0"
    assert not host_config["CapDrop"]
    assert host_config["ReadonlyRootfs"] is False
    # What still holds: its own network, no new privileges, the pids limit.
    assert host_config["NetworkMode"] == network_name(deployment_id)
    assert host_config["SecurityOpt"] == ["no-new-privileges"]
    assert host_config["PidsLimit"] == agent.settings.container_pids_limit


def test_a_cpu_limit_never_becomes_unlimited() -> None:
    # Docker reads NanoCpus 0 as "no limit": a tiny request gets the smallest real limit.
    assert nano_cpus(1e-12, 2) == MIN_NANO_CPUS == 10_000_000
    assert nano_cpus(0.004, None) == MIN_NANO_CPUS
    assert nano_cpus(0.5, 2) == 500_000_000
    # More than the host has is all of it (Docker refuses more), never 0.
    assert nano_cpus(64, 2) == 2_000_000_000
    for absurd in (0.0, -1.0, math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="positive"):
            nano_cpus(absurd, 2)


async def test_the_runtime_floors_a_vanishing_cpu_limit(
    docker_engine: docker.DockerClient, adversarial_tally: Any
) -> None:
    device_id, deployment_id = uuid4(), uuid4()
    runtime = DockerRuntime(device_id)
    labels = {
        LABEL_MANAGED: "true",
        LABEL_DEVICE: str(device_id),
        LABEL_DEPLOYMENT: str(deployment_id),
    }
    spec = ContainerSpec(
        name=f"modelyard-cpu-floor-{deployment_id.hex[:8]}",
        image=BASE_IMAGE,
        labels=labels,
        environment={},
        container_port=8080,
        host_port=free_loopback_port(),
        mem_limit_mb=32,
        cores=1e-12,  # what a manifest let through: 1 nano-CPU, i.e. 0 once rounded
        fence=Fence(
            network=network_name(deployment_id),
            network_labels=labels,
            pids_limit=64,
            tmp_mb=8,
        ),
        command=["python3", "-c", "import time; time.sleep(60)"],
    )
    try:
        started = await runtime.run(spec)
        container = docker_engine.containers.get(started.id)
        adversarial_tally.add(probes=1, server_errors=0)
        assert container.attrs["HostConfig"]["NanoCpus"] == MIN_NANO_CPUS
        assert container.attrs["HostConfig"]["PidsLimit"] == 64
        assert container.attrs["Config"]["User"] == UNPRIVILEGED_USER
        # Removing the deployment's network needs its container gone first.
        await runtime.remove(started.id, 0)
        assert await runtime.remove_networks(deployment_id) == [network_name(deployment_id)]
    finally:
        for leftover in docker_engine.containers.list(
            all=True, filters={"label": f"{LABEL_DEVICE}={device_id}"}
        ):
            leftover.remove(force=True)
        for network in docker_engine.networks.list(
            filters={"label": f"{LABEL_DEVICE}={device_id}"}
        ):
            network.remove()
        await runtime.close()


async def test_networks_go_with_their_deployment_and_orphans_are_collected(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    docker_engine: docker.DockerClient,
) -> None:
    agent = await make_agent()
    device = str(agent.settings.device_id)
    # Left by a crash: labelled as this device's, for a deployment it does not have. And one of
    # another device, and an unlabelled one: never touched.
    orphan = docker_engine.networks.create(
        f"modelyard-net-{uuid4().hex}",
        labels={LABEL_MANAGED: "true", LABEL_DEVICE: device, LABEL_DEPLOYMENT: str(uuid4())},
    )
    foreign = docker_engine.networks.create(
        f"modelyard-net-{uuid4().hex}",
        labels={LABEL_MANAGED: "true", LABEL_DEVICE: str(uuid4()), LABEL_DEPLOYMENT: str(uuid4())},
    )
    bystander = docker_engine.networks.create(f"bystander-{uuid4().hex[:8]}")
    try:
        deployment_id, version = await deploy(
            probe, artifact_server, agent, "handlers_echo", echo_manifest()
        )
        name = network_name(deployment_id)
        assert docker_engine.networks.list(names=[name])

        def gone(network_id: str) -> bool:
            return not docker_engine.networks.list(ids=[network_id])

        await probe.wait_for(lambda: gone(str(orphan.id)), timeout_s=15, what="orphan removed")
        assert not gone(str(foreign.id))
        assert not gone(str(bystander.id))

        # Stopped: the network stays for the container to start again; removed: it goes too.
        await probe.send(
            device_id=agent.settings.device_id,
            deployment_id=deployment_id,
            generation=2,
            version=version,
            desired_state=DesiredState.stopped,
        )
        await probe.wait_state(deployment_id, DeploymentState.stopped)
        assert docker_engine.networks.list(names=[name])
        await probe.send(
            device_id=agent.settings.device_id,
            deployment_id=deployment_id,
            generation=3,
            version=version,
            desired_state=DesiredState.removed,
        )
        await probe.wait_state(deployment_id, DeploymentState.removed)
        assert not docker_engine.networks.list(names=[name])
    finally:
        for network in (orphan, foreign, bystander):
            if docker_engine.networks.list(ids=[str(network.id)]):
                network.remove()


async def test_an_unfenced_container_from_before_is_replaced_by_a_fenced_one(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    api_client: Callable[[Agent], httpx.AsyncClient],
    docker_engine: docker.DockerClient,
    tmp_path: Path,
) -> None:
    device, data_dir = uuid4(), tmp_path / "data"
    agent = await make_agent(device_id=device, data_dir=data_dir)
    deployment_id, version = await deploy(
        probe, artifact_server, agent, "handlers_echo", echo_manifest()
    )
    await agent.stop()
    # What an agent made before fencing: the same container on the default bridge, as root,
    # with every default capability.
    fenced = managed(docker_engine, deployment_id)
    attrs = fenced.attrs
    fenced.remove(force=True)
    legacy = docker_engine.containers.run(
        attrs["Config"]["Image"],
        command=attrs["Config"]["Cmd"],
        name=attrs["Name"].lstrip("/"),
        detach=True,
        labels=attrs["Config"]["Labels"],
        environment=attrs["Config"]["Env"],
        ports={
            "8080/tcp": (
                "127.0.0.1",
                int(attrs["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"]),
            )
        },
        working_dir=attrs["Config"]["WorkingDir"],
        volumes={m["Source"]: {"bind": m["Destination"], "mode": "ro"} for m in attrs["Mounts"]},
        init=True,
    )
    before = probe.last(deployment_id)
    assert before is not None

    agent = await make_agent(device_id=device, data_dir=data_dir)
    await probe.wait_for(
        lambda: (
            (probe.last(deployment_id) or before).sequence > before.sequence
            and probe.states(deployment_id)[-1] is DeploymentState.running
        ),
        timeout_s=60,
        what="the deployment running again",
    )
    replacement = managed(docker_engine, deployment_id)
    assert replacement.id != legacy.id
    assert replacement.attrs["HostConfig"]["NetworkMode"] == network_name(deployment_id)
    assert replacement.attrs["Config"]["User"] == UNPRIVILEGED_USER
    assert replacement.attrs["HostConfig"]["CapDrop"] == ["ALL"]
    async with api_client(agent) as client:
        answer = await client.post(f"/models/{version.model_name}/predict", json=[3])
        assert answer.status_code == 200, answer.text
