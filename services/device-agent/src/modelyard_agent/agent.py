"""The device agent: wires the desired-state store, reconciler, reports and broker together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import httpx

from modelyard_agent import __version__
from modelyard_agent.background import cancel_and_wait
from modelyard_agent.docker_runtime import DockerRuntime
from modelyard_agent.outbox import ReportOutbox
from modelyard_agent.reconciler import Reconciler
from modelyard_agent.routes import RouteTable
from modelyard_agent.settings import AgentSettings
from modelyard_agent.store import DeploymentRecord, DesiredStateStore
from modelyard_common.contracts import (
    DEVICE_COMMAND,
    DEVICE_HEARTBEAT,
    DEVICES_EXCHANGE,
    Capabilities,
    DeviceCommand,
    DeviceHeartbeat,
    device_routing_key,
)
from modelyard_common.device_identity import (
    broker_username,
    device_amqp_url,
    ingress_token,
    token_hash,
)
from modelyard_common.events import CloudEvent, new_event
from modelyard_common.messaging import Binding, Broker, Consumer

if TYPE_CHECKING:
    from modelyard_agent.ingress.app import IngressServer

log = logging.getLogger("modelyard.agent")

WRAPPER_SOURCE = Path(__file__).parent / "runtime" / "modelyard_handlers.py"


class Agent:
    """One device's agent: consumes commands, reconciles, reports, serves the local API."""

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
        self.agent_epoch: str | None = None
        self.routes = RouteTable()
        self.http = httpx.AsyncClient(follow_redirects=True)
        # Calls to model containers get their own pool and a long timeout (inference is slow).
        self.proxy_http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.proxy_timeout_s, connect=5.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        self.wrapper_path = data_dir / "runtime" / "modelyard_handlers.py"
        self.reconciler = Reconciler(
            settings=settings,
            store=self.store,
            docker=self.docker,
            outbox=self.outbox,
            routes=self.routes,
            http=self.http,
            wrapper_path=self.wrapper_path,
        )
        self._consumer: Consumer | None = None
        # Set once the command queue is declared and consumed (tests and readiness wait on it).
        self.consuming = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def queue_name(self) -> str:
        """Return the name of this device's command queue."""
        return device_routing_key(self.settings.device_id)

    async def start(self) -> None:
        """Load the desired state from disk and start every background loop.

        Returns at once: reconciliation starts from disk even while the broker is unreachable.
        """
        await asyncio.to_thread(self._prepare_data_dir)
        if self.ingress is None:
            from modelyard_agent.ingress.app import IngressServer  # the app imports the agent

            self.ingress = IngressServer(
                self,
                self.settings.ingress_host or self.settings.advertise_host,
                self.settings.ingress_port,
            )
            await self.ingress.start()
            log.info("ingress listening on port %s", self.ingress.port)
        self._tasks = [
            asyncio.create_task(self.reconciler.run(), name="reconciler"),
            asyncio.create_task(self.outbox.run(), name="outbox"),
            asyncio.create_task(self._consume_commands(), name="commands"),
            asyncio.create_task(self._send_heartbeats(), name="heartbeats"),
        ]

    async def stop(self) -> None:
        """Stop the loops and close connections; containers keep running."""
        await cancel_and_wait(self._tasks)
        if self.ingress is not None:
            await self.ingress.stop()
            self.ingress = None
        await self.reconciler.stop()
        with contextlib.suppress(Exception):
            await self.broker.close()
        await self.http.aclose()
        await self.proxy_http.aclose()
        await self.docker.close()

    def _prepare_data_dir(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.wrapper_path.parent.mkdir(parents=True, exist_ok=True)
        wrapper = WRAPPER_SOURCE.read_bytes()
        if not self.wrapper_path.exists() or self.wrapper_path.read_bytes() != wrapper:
            self.wrapper_path.write_bytes(wrapper)
        # Mounted read-only into containers that run as an unprivileged user, whatever the umask.
        self.wrapper_path.chmod(0o644)
        self.store.load()
        self.outbox.prepare()
        self.agent_epoch = self.reconciler.agent_epoch = _load_epoch(self.settings.data_dir)

    async def _consume_commands(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.broker.connect()
                break
            except Exception as exc:
                log.warning("broker unreachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
        self._consumer = await self.broker.consume(
            self.queue_name,
            [Binding(DEVICES_EXCHANGE, self.queue_name)],
            self.handle_command,
            delivery_limit=self.settings.consumer_delivery_limit,
        )
        self.consuming.set()
        log.info("consuming commands from %s", self.queue_name)

    async def handle_command(self, event: CloudEvent) -> None:
        """Persist a newer command for this device, then trigger reconciliation.

        Returns (so the message is acked) only once the desired state is on disk. A command that
        does not parse raises, so the queue retries it and then parks it as a poison message.
        """
        if event.type != DEVICE_COMMAND:
            log.warning("ignoring event %s of type %s on the command queue", event.id, event.type)
            return
        command = DeviceCommand.model_validate(event.data)
        if command.device_id != self.settings.device_id:
            log.warning("ignoring command %s meant for device %s", event.id, command.device_id)
            return
        record = await self.store.accept(command)
        if record is None:
            log.info("ignoring stale command %s (generation %s)", event.id, command.generation)
            return
        log.info(
            "command %s: deployment %s generation %s -> %s",
            command.action.value,
            command.deployment_id,
            command.generation,
            command.desired_state.value,
        )
        self.reconciler.command_accepted(command.deployment_id)

    async def _send_heartbeats(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.outbox.send_now(await self.heartbeat_event())
            await asyncio.sleep(self.settings.heartbeat_interval_s)

    async def heartbeat_event(self) -> CloudEvent:
        """Return a heartbeat event with the device's capabilities and deployments."""
        heartbeat = DeviceHeartbeat(
            device_id=self.settings.device_id,
            agent_version=__version__,
            capabilities=await self.capabilities(),
            advertise_host=self.settings.advertise_host,
            sent_at=datetime.now(UTC),
            deployments=[_summary(r) for r in self.store.all() if not r.is_tombstone],
            agent_epoch=self.agent_epoch,
        )
        return new_event(
            type=DEVICE_HEARTBEAT,
            source=f"/devices/{self.settings.device_id}/agent",
            subject=str(self.settings.device_id),
            data=heartbeat.model_dump(mode="json"),
        )

    async def capabilities(self) -> Capabilities:
        """Return what the device offers: Docker version, architecture, RAM, free disk, CPUs."""
        facts: dict[str, Any] = {}
        with contextlib.suppress(Exception):
            facts = await self.docker.engine_facts()
        usage = await asyncio.to_thread(shutil.disk_usage, self.settings.data_dir)
        return Capabilities(
            docker_version=facts.get("docker_version"),
            arch=facts.get("arch") or platform.machine(),
            ram_mb=facts.get("ram_mb") or _ram_mb(),
            disk_free_mb=usage.free // (1024 * 1024),
            cpus=facts.get("cpus") or os.cpu_count(),
        )


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


def _load_epoch(data_dir: Path) -> str:
    """Return the agent epoch of this data dir, made when the dir is new.

    `<milliseconds since 1970, 13 digits>-<random>`: the deployer compares epochs by age.
    """
    path = data_dir / "epoch"
    with contextlib.suppress(FileNotFoundError):
        epoch = path.read_text().strip()
        if epoch:
            return epoch
    epoch = f"{time.time_ns() // 1_000_000:013d}-{uuid.uuid4().hex[:12]}"
    partial = path.with_suffix(".tmp")
    partial.write_text(epoch)
    os.replace(partial, path)
    return epoch


def _ram_mb() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError):
        return None


def _summary(record: DeploymentRecord) -> dict[str, Any]:
    active = record.active_version
    return {
        "deployment_id": str(record.deployment_id),
        "generation": record.command.generation,
        "state": record.state.value,
        "desired_state": record.command.desired_state.value,
        "version_id": str(active.id) if active else None,
        "host_port": record.host_port,
    }
