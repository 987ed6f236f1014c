"""The agent's wiring: its parts, their startup and shutdown, the local API and the ingress app.

`create_app` is the one factory (`modelyard_agent.app:create_app --factory`): its lifespan starts
the device's `Agent` (desired state from disk, reconciler, outbox, command consumer, heartbeats,
ingress) and stops it; the containers keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import unquote, urlsplit

import httpx
from fastapi import FastAPI, Request

from modelyard_agent import __version__
from modelyard_agent.background import cancel_and_wait
from modelyard_agent.commands.consumer import CommandConsumer, by_type
from modelyard_agent.commands.service import CommandService
from modelyard_agent.containers.runtime import DockerRuntime
from modelyard_agent.ingress.router import router as ingress_router
from modelyard_agent.ingress.server import IngressServer
from modelyard_agent.logs.service import LogStreams
from modelyard_agent.models.router import router as models_router
from modelyard_agent.reports.deployments import DeploymentReporter
from modelyard_agent.reports.epoch import load_epoch
from modelyard_agent.reports.health import HealthSampler
from modelyard_agent.reports.heartbeat import Heartbeats
from modelyard_agent.reports.outbox import ReportOutbox
from modelyard_agent.routes import RouteTable
from modelyard_agent.settings import AgentSettings
from modelyard_agent.store import DesiredStateStore
from modelyard_agent.workloads.context import WorkloadContext
from modelyard_agent.workloads.scheduler import Reconciler
from modelyard_agent.workloads.wrapper import install_wrapper
from modelyard_common.contracts import DEPLOYMENT_LOGS_REQUESTED
from modelyard_common.device_identity import (
    broker_username,
    device_amqp_url,
    ingress_token,
    token_hash,
)
from modelyard_common.errors import install_problem_handlers
from modelyard_common.messaging import Broker
from modelyard_common.observability import configure_logging
from modelyard_common.web import ReadinessCheck
from modelyard_common.web import create_app as create_service_app

log = logging.getLogger("modelyard.agent")

MAX_HANDLER_BODY_BYTES = 64 * 1024 * 1024


class Agent:
    """One device's agent: its parts, built from settings; `start` runs them, `stop` ends them.

    Building does no I/O. `start` returns at once: reconciliation starts from disk even while
    the broker is unreachable. `stop` leaves the containers running.
    """

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        data_dir = settings.data_dir
        self.store = DesiredStateStore(data_dir / "deployments")
        self.broker = device_broker(settings)
        self.outbox = ReportOutbox(
            data_dir / "outbox", self.broker, retry_s=settings.outbox_retry_s
        )
        self.docker = DockerRuntime(settings.device_id, workers=settings.docker_workers)
        self.ingress_token = ingress_token(token_hash(settings.token), settings.device_id)
        self.ingress: IngressServer | None = None
        self.routes = RouteTable()
        self.http = httpx.AsyncClient(follow_redirects=True)
        # Calls to model containers get their own pool and a long timeout (inference is slow).
        self.proxy_http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.proxy_timeout_s, connect=5.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        self.wrapper_path = data_dir / "runtime" / "modelyard_handlers.py"
        self.reporter = DeploymentReporter(settings, self.store, self.outbox)
        self.health = HealthSampler(self.docker, self.http)
        self.heartbeats = Heartbeats(settings, self.store, self.docker, self.outbox, self.health)
        self.reconciler = Reconciler(
            WorkloadContext(
                settings=settings,
                store=self.store,
                docker=self.docker,
                routes=self.routes,
                http=self.http,
                reporter=self.reporter,
                wrapper_path=self.wrapper_path,
            )
        )
        self.logs = LogStreams(
            settings, broker=self.broker, docker=self.docker, store=self.store, routes=self.routes
        )
        self.commands = CommandConsumer(
            self.broker,
            settings.device_id,
            by_type(
                {DEPLOYMENT_LOGS_REQUESTED: self.logs.handle_request},
                default=CommandService(
                    settings.device_id, self.store, self.reconciler
                ).handle_command,
            ),
            delivery_limit=settings.consumer_delivery_limit,
        )
        self.agent_epoch: str | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def consuming(self) -> asyncio.Event:
        """Return the event set once the command queue is consumed (readiness waits on it)."""
        return self.commands.consuming

    async def start(self) -> None:
        """Load the desired state from disk and start the ingress and every background loop."""
        epoch = await asyncio.to_thread(self._prepare_data_dir)
        self.agent_epoch = self.reporter.agent_epoch = self.heartbeats.agent_epoch = epoch
        if self.ingress is None:
            self.ingress = IngressServer(
                create_ingress_app(self),
                self.settings.ingress_host or self.settings.advertise_host,
                self.settings.ingress_port,
            )
            await self.ingress.start()
            log.info("ingress listening on port %s", self.ingress.port)
        self._tasks = [
            asyncio.create_task(self.reconciler.run(), name="reconciler"),
            asyncio.create_task(self.outbox.run(), name="outbox"),
            asyncio.create_task(self.commands.run(), name="commands"),
            asyncio.create_task(self.heartbeats.run(), name="heartbeats"),
        ]

    async def stop(self) -> None:
        """Stop the loops and close connections; containers keep running."""
        await cancel_and_wait(self._tasks)
        await self.logs.stop()
        if self.ingress is not None:
            await self.ingress.stop()
            self.ingress = None
        await self.reconciler.stop()
        with contextlib.suppress(Exception):
            await self.broker.close()
        await self.http.aclose()
        await self.proxy_http.aclose()
        await self.docker.close()

    def _prepare_data_dir(self) -> str:
        """Lay out the data dir, load what it holds; return its agent epoch (blocking)."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        install_wrapper(self.wrapper_path)
        self.store.load()
        self.outbox.prepare()
        return load_epoch(self.settings.data_dir)


def device_broker(settings: AgentSettings) -> Broker:
    """Return the broker connection of a device: logged in as itself, declaring nothing.

    A broker URL that carries a login of its own (a development broker without per-device
    logins) is used as given, declaring the topology as services do.
    """
    given = urlsplit(settings.amqp_url)
    if given.username:
        return Broker(settings.amqp_url, prefetch=8, user_id=unquote(given.username))
    return Broker(
        device_amqp_url(settings.amqp_url, settings.device_id, settings.token),
        prefetch=8,
        user_id=broker_username(settings.device_id),
        declare=False,
    )


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


def create_app(settings: AgentSettings | Agent | None = None) -> FastAPI:
    """Return the local API app.

    Given settings (or none: read from the environment), the app builds its own `Agent` and
    starts and stops it in its lifespan. Given an `Agent` (tests, benchmarks), it serves that
    one and leaves starting and stopping it to the caller.
    """
    if isinstance(settings, Agent):
        agent, owned = settings, False
    else:
        settings = settings or AgentSettings()
        configure_logging("agent", settings.log_level, json_logs=settings.log_json)
        agent, owned = Agent(settings), True

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if owned:
            await agent.start()
        try:
            yield
        finally:
            if owned:
                await agent.stop()

    app = create_service_app(
        title="Modelyard device agent",
        description="Device-local API: the models running here, called by name at stable URLs.",
        version=__version__,
        settings=agent.settings,
        routers=[models_router],
        lifespan=lifespan,
        readiness=readiness,
        # A handler's payload (JSON or an image) is relayed as is, not read as an API document.
        raw_bodies={("POST", "/models/{model_name}/{handler:path}"): MAX_HANDLER_BODY_BYTES},
    )
    _expose(app, agent)
    app.state.broker = agent.broker
    app.state.docker = agent.docker
    return app


def create_ingress_app(agent: Agent) -> FastAPI:
    """Return the ingress app (no docs, no health routes: everything needs the credential)."""
    app = FastAPI(title="Modelyard device ingress", docs_url=None, redoc_url=None, openapi_url=None)
    install_problem_handlers(app)
    app.include_router(ingress_router)
    _expose(app, agent)
    app.state.ingress_token = agent.ingress_token
    return app


def _expose(app: FastAPI, agent: Agent) -> None:
    """Put the parts the app's routes read (see `deps`) on `app.state`."""
    app.state.agent = agent
    app.state.store = agent.store
    app.state.routes = agent.routes
    app.state.proxy_http = agent.proxy_http
