"""An interrupted download resumes with the rest only, and the whole zip is verified at the end."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from uuid import uuid4

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

from modelyard_agent.artifacts.download import DownloadPolicy, download_artifact, partial_path
from modelyard_agent.errors import TransientError
from modelyard_common.contracts import DeploymentState, VersionSpec

PROJECTS = Path(__file__).parent / "projects"


def weighty_version(server: ArtifactServer, weights_mb: int = 2) -> tuple[VersionSpec, bytes, str]:
    """Return an echo version whose zip carries incompressible weights, its bytes and its key."""
    data = zip_project(
        PROJECTS / "handlers_echo", {"weights.bin": os.urandom(weights_mb * 1024 * 1024)}
    )
    version = version_spec(
        server,
        data,
        project_manifest(main="echo_model.py", handlers=[{"name": "predict"}]),
        model_name=f"echo-{uuid4().hex[:6]}",
        model_id=uuid4(),
        number=1,
    )
    return version, data, version.artifact_url.rsplit("/", 1)[-1]


def requests_for(server: ArtifactServer, key: str) -> list[tuple[str | None, int]]:
    return [(range_header, status) for k, range_header, status in server.requests if k == key]


async def test_cut_at_half_resumes_with_the_rest_only(
    make_agent: AgentFactory, probe: BrokerProbe, artifact_server: ArtifactServer
) -> None:
    agent = await make_agent()
    version, data, key = weighty_version(artifact_server)
    half = len(data) // 2
    artifact_server.cut_after[key] = half
    deployment_id = uuid4()
    await probe.send(
        device_id=agent.settings.device_id,
        deployment_id=deployment_id,
        generation=1,
        version=version,
    )
    await probe.wait_state(deployment_id, DeploymentState.running, timeout_s=60)
    assert requests_for(artifact_server, key) == [(None, 200), (f"bytes={half}-", 206)]
    # Each byte crossed the wire once: 1x the zip, not 1.5x.
    assert artifact_server.served[key] == len(data)
    downloads = agent.settings.data_dir / "downloads"
    assert list(downloads.iterdir()) == []


async def test_tampered_resume_fails_verification_and_deletes_the_part(
    make_agent: AgentFactory, probe: BrokerProbe, artifact_server: ArtifactServer
) -> None:
    agent = await make_agent()
    version, data, key = weighty_version(artifact_server)
    half = len(data) // 2
    artifact_server.cut_after[key] = half
    # The second half, as served to the resume, has one byte changed.
    artifact_server.tampered[key] = data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:]
    deployment_id = uuid4()
    await probe.send(
        device_id=agent.settings.device_id,
        deployment_id=deployment_id,
        generation=1,
        version=version,
    )
    failed = await probe.wait_state(deployment_id, DeploymentState.failed, timeout_s=60)
    assert "does not match its SHA-256" in failed.message
    assert f"resumed at byte {half}" in failed.message
    assert "The download was deleted" in failed.message
    assert DeploymentState.verifying in probe.states(deployment_id)
    assert requests_for(artifact_server, key) == [(None, 200), (f"bytes={half}-", 206)]
    assert list((agent.settings.data_dir / "downloads").iterdir()) == []
    assert not (agent.settings.data_dir / "versions" / str(deployment_id)).exists()


@pytest.mark.parametrize(
    ("mode", "answers"),
    [
        # A 200 to a Range request is the whole zip: written from zero.
        ("ignore", [200]),
        # A 206 that does not start where the part ends is dropped; a fresh request follows.
        ("from_zero", [206, 200]),
    ],
)
async def test_a_resume_the_server_does_not_honour_starts_over(
    artifact_server: ArtifactServer, tmp_path: Path, mode: str, answers: list[int]
) -> None:
    version, data, key = weighty_version(artifact_server, weights_mb=1)
    artifact_server.range_mode[key] = mode
    destination = tmp_path / "version.zip"
    # A part left by an earlier run, whose tail would be wrong if appended to blindly.
    partial_path(destination).write_bytes(data[: len(data) // 3])
    policy = DownloadPolicy(token=artifact_server.token, retry_delay_s=0.05)
    async with httpx.AsyncClient() as client:
        path = await download_artifact(client, version, destination, policy)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == version.sha256
    assert [status for _range, status in requests_for(artifact_server, key)] == answers
    assert requests_for(artifact_server, key)[0][0] == f"bytes={len(data) // 3}-"
    assert not partial_path(destination).exists()


async def test_attempts_without_progress_are_bounded(
    artifact_server: ArtifactServer, tmp_path: Path
) -> None:
    version, _data, _key = weighty_version(artifact_server, weights_mb=0)
    # Nothing listens there: every attempt fails without a byte.
    unreachable = version.model_copy(update={"artifact_url": "http://127.0.0.1:9/artifacts/x"})
    policy = DownloadPolicy(token=artifact_server.token, attempts=3, retry_delay_s=0.1)
    started = time.monotonic()
    async with httpx.AsyncClient() as client:
        with pytest.raises(TransientError, match="failed 3 times in a row without progress"):
            await download_artifact(client, unreachable, tmp_path / "v.zip", policy)
    # Delays of 0.1 s then 0.2 s between the three attempts, not more.
    assert 0.3 <= time.monotonic() - started < 5
