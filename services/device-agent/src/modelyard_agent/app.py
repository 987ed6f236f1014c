"""The agent's FastAPI app: the local API on loopback, with the agent's loops in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from modelyard_agent import __version__
from modelyard_agent.agent import Agent
from modelyard_agent.api.router import router
from modelyard_agent.settings import AgentSettings
from modelyard_common.observability import configure_logging
from modelyard_common.web import ReadinessCheck
from modelyard_common.web import create_app as create_service_app

MAX_HANDLER_BODY_BYTES = 64 * 1024 * 1024


def readiness(request: Request) -> dict[str, ReadinessCheck]:
    """Return the agent's readiness checks: broker connected, command queue consumed."""
    agent: Agent = request.app.state.agent

    async def broker() -> None:
        if not agent.broker.is_connected:
            raise ConnectionError("broker not connected")

    async def commands() -> None:
        if not agent.consuming.is_set():
            raise ConnectionError("not consuming commands yet")

    return {"broker": broker, "commands": commands}


def create_app(agent: Agent | None = None) -> FastAPI:
    """Return the local API app; without `agent`, it builds one and runs it in its lifespan."""
    owned = agent is None
    if agent is None:
        settings = AgentSettings()
        configure_logging("agent", settings.log_level, json_logs=settings.log_json)
        agent = Agent(settings)
    running_agent = agent

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if owned:
            await running_agent.start()
        try:
            yield
        finally:
            if owned:
                await running_agent.stop()

    app = create_service_app(
        title="Modelyard device agent",
        description="Device-local API: the models running here, called by name at stable URLs.",
        version=__version__,
        settings=running_agent.settings,
        routers=[router],
        lifespan=lifespan,
        readiness=readiness,
        # A handler's payload (JSON or an image) is relayed as is, not read as an API document.
        raw_bodies={("POST", "/models/{model_name}/{handler:path}"): MAX_HANDLER_BODY_BYTES},
    )
    app.state.agent = running_agent
    app.state.broker = running_agent.broker
    return app
