"""A device short of disk refuses a version with the numbers, and keeps working meanwhile.

The agent's data dir is a small tmpfs (the tests run as root and unmount it after).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import pytest
from modelyard_testkit.agent import (
    AgentFactory,
    ArtifactServer,
    BrokerProbe,
    project_manifest,
    version_spec,
    zip_project,
)

from modelyard_agent.app import Agent
from modelyard_common.contracts import DeploymentState, VersionSpec

PROJECTS = Path(__file__).parent / "projects"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """Return an 8 MiB tmpfs mounted for this test only."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        # Lazy: an agent still closing a file does not keep the mount (or the test) hanging.
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def echo_version(server: ArtifactServer, weights_mb: float = 0) -> VersionSpec:
    extra = {"weights.bin": os.urandom(int(weights_mb * 1024 * 1024))} if weights_mb else None
    return version_spec(
        server,
        zip_project(PROJECTS / "handlers_echo", extra),
        project_manifest(main="echo_model.py", handlers=[{"name": "predict"}]),
        model_name=f"echo-{uuid4().hex[:6]}",
        model_id=uuid4(),
        number=1,
    )


async def start_running(
    agent: Agent, probe: BrokerProbe, server: ArtifactServer
) -> tuple[UUID, VersionSpec]:
    """Deploy a small echo version on the agent and wait until it runs."""
    deployment_id, version = uuid4(), echo_version(server)
    await probe.send(
        device_id=agent.settings.device_id,
        deployment_id=deployment_id,
        generation=1,
        version=version,
    )
    await probe.wait_state(deployment_id, DeploymentState.running, timeout_s=60)
    return deployment_id, version


async def assert_device_keeps_working(
    agent: Agent,
    probe: BrokerProbe,
    api_client: Callable[[Agent], httpx.AsyncClient],
    running: tuple[UUID, VersionSpec],
) -> None:
    """Heartbeats keep arriving, listing the other deployment running, and it answers calls."""
    device = str(agent.settings.device_id)

    def beats() -> list[dict[str, object]]:
        return [h for h in probe.heartbeats if h["device_id"] == device]

    seen = len(beats())
    await probe.wait_for(lambda: len(beats()) >= seen + 3, timeout_s=10, what="3 more heartbeats")
    states = {d["deployment_id"]: d["state"] for d in beats()[-1]["deployments"]}  # type: ignore[attr-defined]
    assert states[str(running[0])] == "running"
    async with api_client(agent) as client:
        answer = await client.post(f"/models/{running[1].model_name}/predict", json={"n": 1})
    assert answer.status_code == 200


async def test_version_larger_than_free_disk_fails_at_once_and_the_device_keeps_working(
    small_disk: Path,
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    api_client: Callable[[Agent], httpx.AsyncClient],
) -> None:
    agent = await make_agent(data_dir=small_disk / "agent", disk_margin_mb=1)
    running = await start_running(agent, probe, artifact_server)

    big = echo_version(artifact_server, weights_mb=10)
    deployment_id = uuid4()
    await probe.send(
        device_id=agent.settings.device_id, deployment_id=deployment_id, generation=1, version=big
    )
    failed = await probe.wait_state(deployment_id, DeploymentState.failed, timeout_s=20)
    assert "Not enough free disk for version 1: needs 22 MB" in failed.message, failed.message
    assert "MB free in" in failed.message
    assert "retrying" not in failed.message
    # Refused before the first byte.
    key = big.artifact_url.rsplit("/", 1)[-1]
    assert [r for r in artifact_server.requests if r[0] == key] == []
    await assert_device_keeps_working(agent, probe, api_client, running)
    # Refused for good: not retried by the periodic passes.
    assert probe.states(deployment_id)[-1] is DeploymentState.failed
    assert probe.states(deployment_id).count(DeploymentState.failed) == 1


def fill_disk(path: Path) -> None:
    """Write zeros to `path` until the file system is full."""
    block = b"\0" * (64 * 1024)
    with path.open("wb", buffering=0) as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(block)
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 512)


async def test_disk_filling_up_mid_download_frees_the_part_and_refuses(
    small_disk: Path,
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    api_client: Callable[[Agent], httpx.AsyncClient],
) -> None:
    # No margin and a small unpack factor: the 4 MiB version passes the check before download.
    agent = await make_agent(
        data_dir=small_disk / "agent", disk_margin_mb=0, disk_unpack_factor=0.1
    )
    running = await start_running(agent, probe, artifact_server)

    big = echo_version(artifact_server, weights_mb=4)
    key = big.artifact_url.rsplit("/", 1)[-1]
    artifact_server.throttle[key] = (32 * 1024, 0.02)
    deployment_id = uuid4()
    await probe.send(
        device_id=agent.settings.device_id, deployment_id=deployment_id, generation=1, version=big
    )
    downloads = agent.settings.data_dir / "downloads"
    partial = downloads / f"{deployment_id}-{big.id}.zip.part"
    await probe.wait_for(
        lambda: partial.exists() and partial.stat().st_size > 512 * 1024,
        timeout_s=20,
        what="download under way",
    )
    # Something else on the device takes every free byte.
    filler = small_disk / "filler"
    await asyncio.to_thread(fill_disk, filler)
    try:

        def reported(text: str) -> bool:
            mine = (r for r in probe.reports if r.deployment_id == deployment_id)
            return any(text in r.message for r in mine)

        # First the write that found the disk full (the part is deleted, its space given back),
        # then, on the retry, the check before downloading refuses the version with the numbers.
        await probe.wait_for(
            lambda: reported("The disk filled up while downloading"), timeout_s=20, what="disk full"
        )
        await probe.wait_for(
            lambda: reported("Not enough free disk"), timeout_s=20, what="refusal on the retry"
        )
        assert probe.states(deployment_id)[-1] is DeploymentState.failed
        assert not partial.exists()
        await assert_device_keeps_working(agent, probe, api_client, running)
    finally:
        filler.unlink(missing_ok=True)
