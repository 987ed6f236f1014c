"""Malicious zips are refused and nothing is written outside the agent's data directory."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path
from uuid import uuid4

import docker
import pytest
from modelyard_testkit.agent import (
    AgentFactory,
    ArtifactServer,
    BrokerProbe,
    project_manifest,
    version_spec,
)

from modelyard_agent.containers.labels import LABEL_DEPLOYMENT
from modelyard_common.contracts import DeploymentState

ESCAPE_NAME = f"escaped-{uuid4().hex}.txt"
MAIN = b"def predict(payload):\n    return payload\n"


def malicious_zip(kind: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("main.py", MAIN)
        if kind == "zip_slip":
            archive.writestr("../" * 8 + f"tmp/{ESCAPE_NAME}", b"pwned")
        elif kind == "absolute":
            archive.writestr(f"/tmp/{ESCAPE_NAME}", b"pwned")
        elif kind == "symlink":
            link = zipfile.ZipInfo("weights.bin")
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(link, "/etc/shadow")
        elif kind == "bomb":
            archive.writestr("weights.bin", b"\0" * (64 * 1024 * 1024))
    return buffer.getvalue()


def written_files(root: Path) -> list[str]:
    """Return files anywhere under `root` or in /tmp that an extraction could have written."""
    escaped = [str(p) for p in (Path("/tmp") / ESCAPE_NAME, root / ESCAPE_NAME) if p.exists()]
    outside = [p.name for p in root.iterdir() if p.name != "data"]
    extracted = [str(p) for p in (root / "data" / "versions").rglob("*") if p.is_file()]
    downloads = [str(p) for p in (root / "data" / "downloads").glob("*")]
    return escaped + outside + extracted + downloads


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("zip_slip", "'..'"),
        ("absolute", "absolute path"),
        ("symlink", "symbolic link"),
        ("bomb", "compression ratio"),
    ],
)
async def test_malicious_zip_is_refused(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    docker_engine: docker.DockerClient,
    tmp_path: Path,
    kind: str,
    reason: str,
) -> None:
    agent = await make_agent(data_dir=tmp_path / "data")
    deployment_id = uuid4()
    version = version_spec(
        artifact_server,
        malicious_zip(kind),
        project_manifest(main="main.py", handlers=[{"name": "predict"}]),
        model_name=f"evil-{kind}",
        model_id=uuid4(),
        number=1,
    )
    await probe.send(
        device_id=agent.settings.device_id,
        deployment_id=deployment_id,
        generation=1,
        version=version,
    )
    failed = await probe.wait_state(deployment_id, DeploymentState.failed, timeout_s=30)
    assert reason in failed.message
    assert failed.message.startswith("The artifact was refused")
    # Nothing escaped, nothing half-extracted, nothing started.
    assert written_files(tmp_path) == []
    assert (
        docker_engine.containers.list(
            all=True, filters={"label": f"{LABEL_DEPLOYMENT}={deployment_id}"}
        )
        == []
    )
