"""An `openai` project's streamed answer passes through the agent's local API as it is made."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import httpx
import uvicorn
from modelyard_testkit.agent import (
    AgentFactory,
    ArtifactServer,
    BrokerProbe,
    project_manifest,
    version_spec,
    zip_project,
)
from modelyard_testkit.testing import wait_for

from modelyard_agent.app import Agent, create_app
from modelyard_common.contracts import DeploymentState

PROJECTS = Path(__file__).parent / "projects"


@contextlib.asynccontextmanager
async def served(agent: Agent) -> AsyncIterator[str]:
    """Serve the agent's local API over real HTTP (in-process ASGI would buffer the body)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(agent), host="127.0.0.1", port=port, lifespan="off", log_config=None
        )
    )
    task = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            return bool(server.started)

        await wait_for(started, timeout=10, interval=0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_server_sent_events_are_relayed_chunk_by_chunk(
    make_agent: AgentFactory,
    probe: BrokerProbe,
    artifact_server: ArtifactServer,
) -> None:
    agent = await make_agent()
    model_name = f"stream-{uuid4().hex[:6]}"
    deployment_id = uuid4()
    version = version_spec(
        artifact_server,
        zip_project(PROJECTS / "openai_stream"),
        project_manifest(main="server.py", protocol="openai"),
        model_name=model_name,
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

    arrivals: list[tuple[float, str]] = []
    async with (
        served(agent) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
        client.stream(
            "POST",
            f"/models/{model_name}/v1/chat/completions",
            json={"model": model_name, "stream": True, "messages": []},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic(), line))
    assert [line for _, line in arrivals][-1] == "data: [DONE]"
    assert len(arrivals) == 4
    # The upstream waits 0.4 s between events: buffered, they would all arrive at once.
    assert arrivals[-1][0] - arrivals[0][0] > 0.8
