"""Downloads are authenticated, checked against their SHA-256 and against free disk first."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

from modelyard_testkit.agent import (
    AgentFactory,
    ArtifactServer,
    BrokerProbe,
    project_manifest,
    version_spec,
    zip_project,
)

from modelyard_common.contracts import DeploymentState, VersionSpec

PROJECTS = Path(__file__).parent / "projects"


def echo_version(server: ArtifactServer, **changes: object) -> VersionSpec:
    return version_spec(
        server,
        zip_project(PROJECTS / "handlers_echo"),
        project_manifest(main="echo_model.py", handlers=[{"name": "predict"}]),
        model_name=f"echo-{uuid4().hex[:6]}",
        model_id=uuid4(),
        number=1,
    ).model_copy(update=changes)


async def test_wrong_device_token_is_refused_and_reported(
    make_agent: AgentFactory, probe: BrokerProbe, artifact_server: ArtifactServer
) -> None:
    agent = await make_agent(token="not-the-device-token")
    deployment_id = uuid4()
    await probe.send(
        device_id=agent.settings.device_id,
        deployment_id=deployment_id,
        generation=1,
        version=echo_version(artifact_server),
    )
    failed = await probe.wait_state(deployment_id, DeploymentState.failed)
    assert "HTTP 401" in failed.message
    assert artifact_server.requests[-1][2] == 401


async def test_checksum_mismatch_fails_and_leaves_no_files(
    make_agent: AgentFactory, probe: BrokerProbe, artifact_server: ArtifactServer
) -> None:
    agent = await make_agent()
    deployment_id = uuid4()
    await probe.send(
        device_id=agent.settings.device_id,
        deployment_id=deployment_id,
        generation=1,
        version=echo_version(artifact_server, sha256="0" * 64),
    )
    failed = await probe.wait_state(deployment_id, DeploymentState.failed)
    assert "does not match its SHA-256" in failed.message
    assert DeploymentState.verifying in probe.states(deployment_id)
    data_dir = agent.settings.data_dir
    assert list((data_dir / "downloads").iterdir()) == []
    assert not (data_dir / "versions" / str(deployment_id)).exists()


async def test_not_enough_disk_is_checked_before_downloading(
    make_agent: AgentFactory, probe: BrokerProbe, artifact_server: ArtifactServer
) -> None:
    agent = await make_agent(disk_margin_mb=1024**3)
    deployment_id = uuid4()
    version = echo_version(artifact_server)
    await probe.send(
        device_id=agent.settings.device_id,
        deployment_id=deployment_id,
        generation=1,
        version=version,
    )
    failed = await probe.wait_state(deployment_id, DeploymentState.failed)
    assert "Not enough free disk" in failed.message
    assert "MB free" in failed.message
    # Refused for this generation: not retried (and not downloaded) until a newer command.
    assert "retrying in" not in failed.message
    key = version.artifact_url.rsplit("/", 1)[-1]
    assert [r for r in artifact_server.requests if r[0] == key] == []
