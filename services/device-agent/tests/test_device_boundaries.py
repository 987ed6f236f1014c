"""What a device holds and whom it talks to: its own settings, the deployer's origin only, an
authenticated ingress on its advertised address, Dockerfile projects run as built."""

from __future__ import annotations

from collections.abc import Callable
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
from modelyard_agent.settings import AgentSettings
from modelyard_common.contracts import CommandAction, DeploymentState, DesiredState, VersionSpec
from modelyard_common.device_identity import ingress_token, token_hash

PROJECTS = Path(__file__).parent / "projects"


async def deploy(
    probe: BrokerProbe, agent: Agent, deployment_id: UUID, version: VersionSpec
) -> None:
    """Send the agent a first deploy command for `version`."""
    await probe.send(
        device_id=agent.settings.device_id,
        deployment_id=deployment_id,
        generation=1,
        version=version,
        action=CommandAction.deploy,
        desired_state=DesiredState.running,
    )


def test_agent_settings_hold_no_platform_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_JWT_SECRET", "a-platform-secret-the-device-must-not-hold")
    monkeypatch.setenv("MODELYARD_DATABASE_URL", "postgresql://platform/db")
    settings = AgentSettings()
    dumped = settings.model_dump_json()
    assert "jwt_secret" not in AgentSettings.model_fields
    assert "database_url" not in AgentSettings.model_fields
    assert "platform-secret" not in dumped
    assert "postgresql" not in dumped


async def test_foreign_artifact_url_is_refused_and_the_token_not_sent(
    make_agent: AgentFactory, probe: BrokerProbe, artifact_server: ArtifactServer
) -> None:
    foreign = ArtifactServer(token="whatever")
    foreign.start()
    try:
        agent = await make_agent()
        deployment_id = uuid4()
        version = version_spec(
            foreign,
            zip_project(PROJECTS / "handlers_echo"),
            project_manifest(main="echo_model.py", handlers=[{"name": "predict"}]),
            model_name=f"lured-{uuid4().hex[:6]}",
            model_id=uuid4(),
            number=1,
        )
        await deploy(probe, agent, deployment_id, version)
        report = await probe.wait_state(deployment_id, DeploymentState.failed)
        assert "artifacts come only from the configured deployer" in report.message
        assert foreign.origin in report.message
        assert foreign.requests == []  # not one request: the token never left the device
    finally:
        foreign.stop()


async def test_dockerfile_handlers_project_runs_in_its_image_workdir(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
    api_client: Callable[[Agent], httpx.AsyncClient],
) -> None:
    agent = await make_agent()
    deployment_id = uuid4()
    model_name = f"built-{uuid4().hex[:6]}"
    version = version_spec(
        artifact_server,
        zip_project(PROJECTS / "dockerfile_handlers"),
        project_manifest(
            dockerfile=True, main="model.py", handlers=[{"name": "predict"}], protocol="handlers"
        ),
        model_name=model_name,
        model_id=uuid4(),
        number=1,
    )
    await deploy(probe, agent, deployment_id, version)
    await probe.wait_state(deployment_id, DeploymentState.running, timeout_s=180)
    async with api_client(agent) as client:
        answer = await client.post(f"/models/{model_name}/predict", json={"x": 1})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"weights": "trained at build time", "cwd": "/app", "echo": {"x": 1}}

    # The same model through the ingress: the credential is required, then it forwards.
    assert agent.ingress is not None
    ingress = f"http://127.0.0.1:{agent.ingress.port}/deployments/{deployment_id}/predict"
    async with httpx.AsyncClient() as http:
        refused = await http.post(ingress, json={"x": 2})
        wrong = await http.post(ingress, json={"x": 2}, headers={"Authorization": "Bearer myin_x"})
        device_token = await http.post(
            ingress, json={"x": 2}, headers={"Authorization": f"Bearer {agent.settings.token}"}
        )
        credential = ingress_token(token_hash(agent.settings.token), agent.settings.device_id)
        allowed = await http.post(
            ingress, json={"x": 2}, headers={"Authorization": f"Bearer {credential}"}
        )
        unknown = await http.post(
            f"http://127.0.0.1:{agent.ingress.port}/deployments/{uuid4()}/predict",
            json={},
            headers={"Authorization": f"Bearer {credential}"},
        )
    for response in (refused, wrong, device_token):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["echo"] == {"x": 2}
    assert unknown.status_code == 503
