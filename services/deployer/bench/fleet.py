"""A fleet of simulated devices speaking the agent's protocol over the real broker and HTTP.

Each simulated device logs in to the broker as itself, as a real agent does: the login the
deployer made when the device was registered (`broker_username(id)`, its password derived from
the device token), one connection per device, consuming only its own `device.<id>` quorum queue
(declared by the deployer; the login may declare nothing) and publishing with its login as the
AMQP `user_id`, which the broker checks. It sends heartbeats at the agent's interval, listing
the deployments it holds (generation, state, health) as the agent does, and answers a deploy
command like an agent would: downloads the artifact with its device token (HTTP), then reports
`downloading`, `verifying`, `building`, `starting`, `running`, one report per state, each with a
growing sequence.

"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from modelyard_common.contracts import (
    DEPLOYMENT_REPORTED,
    DEVICE_HEARTBEAT,
    DEVICES_EXCHANGE,
    EVENTS_EXCHANGE,
    DeviceCommand,
)
from modelyard_common.device_identity import broker_username, device_amqp_url
from modelyard_common.events import CloudEvent, new_event
from modelyard_common.messaging import Binding, Broker

REPORTED_STATES = ("downloading", "verifying", "building", "starting", "running")
AGENT_VERSION = "bench-0.1"


@dataclass
class FleetStats:
    """What the fleet saw, with monotonic times."""

    commands: int = 0
    reports: int = 0
    heartbeats: int = 0
    downloads: int = 0
    download_errors: int = 0
    download_retries: Counter[str] = field(default_factory=Counter)
    first_command_at: float | None = None
    last_command_at: float | None = None
    first_report_at: float | None = None
    last_report_at: float | None = None
    # Set when the fleet stops: a command arriving meanwhile starts no work.
    stopping: bool = False

    def command(self) -> None:
        now = time.monotonic()
        self.commands += 1
        self.first_command_at = self.first_command_at or now
        self.last_command_at = now

    def report(self) -> None:
        now = time.monotonic()
        self.reports += 1
        self.first_report_at = self.first_report_at or now
        self.last_report_at = now


class DeviceLink:
    """One device's own broker connection: its login, its queue, its `user_id` on each publish."""

    def __init__(self, amqp_url: str, device_id: uuid.UUID, token: str, *, prefetch: int = 4):
        self.device_id = device_id
        self.broker = Broker(
            device_amqp_url(amqp_url, device_id, token),
            prefetch=prefetch,
            user_id=broker_username(device_id),
            declare=False,
        )

    async def connect(self) -> None:
        await self.broker.connect(timeout=60)

    async def listen(self, on_command: Callable[[CloudEvent], Awaitable[None]]) -> None:
        """Consume the device's own queue (declared by the deployer at registration)."""
        name = f"device.{self.device_id}"
        await self.broker.consume(name, [Binding(DEVICES_EXCHANGE, name)], on_command)

    async def publish(self, event: CloudEvent) -> None:
        """Publish an event as the device (confirmed by the broker)."""
        await self.broker.publish(event, exchange=EVENTS_EXCHANGE, routing_key=event.type)

    async def close(self) -> None:
        await self.broker.close()


@dataclass
class Held:
    """A deployment as the device holds it (what its heartbeat lists)."""

    generation: int
    version_id: uuid.UUID
    state: str = "pending"


@dataclass
class SimulatedDevice:
    """One device: its identity, its own broker link, and what it holds."""

    id: uuid.UUID
    token: str
    link: DeviceLink
    stats: FleetStats
    http: httpx.AsyncClient
    download: bool = True
    sequences: dict[uuid.UUID, int] = field(default_factory=dict)
    held: dict[uuid.UUID, Held] = field(default_factory=dict)

    def heartbeat_event(self) -> CloudEvent:
        now = datetime.now(UTC).isoformat()
        return new_event(
            type=DEVICE_HEARTBEAT,
            source=f"modelyard-agent/{self.id}",
            subject=str(self.id),
            data={
                "device_id": str(self.id),
                "agent_version": AGENT_VERSION,
                "capabilities": {"arch": "x86_64", "ram_mb": 4096, "cpus": 4, "disk_free_mb": 9000},
                "advertise_host": "127.0.0.1",
                "sent_at": now,
                # As the agent lists them: each with its generation and health.
                "deployments": [
                    {
                        "deployment_id": str(deployment_id),
                        "generation": held.generation,
                        "state": held.state,
                        "desired_state": "running",
                        "version_id": str(held.version_id),
                        "host_port": 18000,
                        "health": {
                            "probe_ok": held.state == "running",
                            "probe_status": 200 if held.state == "running" else None,
                            "probed_at": now,
                            "restarts": 0,
                            "memory_mb": round(random.uniform(40, 90), 1),
                            "memory_limit_mb": 512.0,
                            "cpu_percent": round(random.uniform(0, 20), 2),
                            "sampled_at": now,
                        },
                    }
                    for deployment_id, held in self.held.items()
                ],
            },
        )

    async def heartbeat(self) -> None:
        await self.link.publish(self.heartbeat_event())
        self.stats.heartbeats += 1

    async def on_command(self, event: CloudEvent) -> None:
        """Take a command off the queue; its work goes on in the background (acked at once).

        As the agent, a command whose generation is not above the one held is already done.
        """
        if self.stats.stopping:
            return
        command = DeviceCommand.model_validate(event.data)
        self.stats.command()
        held = self.held.get(command.deployment_id)
        if held is not None and command.generation <= held.generation:
            return
        self.held[command.deployment_id] = Held(command.generation, command.version.id)
        task = asyncio.create_task(self.carry_out(command))
        _running.add(task)
        task.add_done_callback(_running.discard)

    async def carry_out(self, command: DeviceCommand) -> None:
        for state in REPORTED_STATES:
            if state == "verifying" and self.download:
                await self.fetch(command.version.artifact_url)
            await self.report(command, state)
            self.held[command.deployment_id].state = state

    async def fetch(self, url: str, attempts: int = 5) -> None:
        """Download the zip as the agent does: retried with backoff, then given up."""
        for attempt in range(attempts):
            try:
                response = await self.http.get(
                    url, headers={"Authorization": f"Bearer {self.token}"}
                )
                response.raise_for_status()
                self.stats.downloads += 1
                return
            except httpx.HTTPError as exc:
                self.stats.download_retries[type(exc).__name__] += 1
                await asyncio.sleep(min(2**attempt, 10))
        self.stats.download_errors += 1

    async def report(self, command: DeviceCommand, state: str) -> None:
        sequence = self.sequences.get(command.deployment_id, 0) + 1
        self.sequences[command.deployment_id] = sequence
        event = new_event(
            type=DEPLOYMENT_REPORTED,
            source=f"modelyard-agent/{self.id}",
            subject=str(command.deployment_id),
            data={
                "deployment_id": str(command.deployment_id),
                "device_id": str(self.id),
                "generation": command.generation,
                "sequence": sequence,
                "state": state,
                "version_id": str(command.version.id),
                "message": f"simulated {state}",
                "log_tail": [],
                "host_port": 18000 if state == "running" else None,
                "reported_at": datetime.now(UTC).isoformat(),
            },
        )
        await self.link.publish(event)
        self.stats.report()


_running: set[asyncio.Task[None]] = set()


class Fleet:
    """N simulated devices, each on its own broker login, heartbeating at the agent's interval."""

    def __init__(
        self,
        amqp_url: str,
        devices: list[tuple[uuid.UUID, str]],
        *,
        deployer_url: str,
        heartbeat_interval_s: float,
        download: bool = True,
        connect_concurrency: int = 25,
    ) -> None:
        self.amqp_url = amqp_url
        self.identities = devices
        self.heartbeat_interval_s = heartbeat_interval_s
        self.connect_concurrency = connect_concurrency
        self.stats = FleetStats()
        self.http = httpx.AsyncClient(
            base_url=deployer_url,
            timeout=60,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
        )
        self.download = download
        self.devices: list[SimulatedDevice] = []
        self._pulse: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Log every device in (a few at a time), consume its queue, start the heartbeats."""
        gate = asyncio.Semaphore(self.connect_concurrency)

        async def one(device_id: uuid.UUID, token: str) -> SimulatedDevice:
            link = DeviceLink(self.amqp_url, device_id, token)
            device = SimulatedDevice(
                device_id, token, link, self.stats, self.http, download=self.download
            )
            async with gate:
                await link.connect()
                await link.listen(device.on_command)
            return device

        self.devices = list(await asyncio.gather(*(one(i, t) for i, t in self.identities)))
        self._pulse = asyncio.create_task(self._heartbeats())

    async def _heartbeats(self) -> None:
        """Every device beats once per interval, spread evenly over it (as real agents drift)."""
        order = list(self.devices)
        random.shuffle(order)
        await asyncio.gather(*(d.heartbeat() for d in order))  # everyone online at once
        while True:
            gap = self.heartbeat_interval_s / max(len(order), 1)
            started = time.monotonic()
            for index, device in enumerate(order):
                delay = started + index * gap - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(device.heartbeat())
                _running.add(task)
                task.add_done_callback(_running.discard)
            rest = started + self.heartbeat_interval_s - time.monotonic()
            if rest > 0:
                await asyncio.sleep(rest)

    async def burst(self, heartbeats: int) -> None:
        """Publish `heartbeats` heartbeats as fast as the links take them (capacity probe)."""
        devices = self.devices
        for start in range(0, heartbeats, 200):
            batch = [devices[i % len(devices)] for i in range(start, min(start + 200, heartbeats))]
            await asyncio.gather(*(d.heartbeat() for d in batch))

    async def stop(self) -> None:
        self.stats.stopping = True
        if self._pulse is not None:
            self._pulse.cancel()
        for task in list(_running):
            task.cancel()
        await asyncio.gather(*_running, return_exceptions=True)
        gate = asyncio.Semaphore(self.connect_concurrency)

        async def close(device: SimulatedDevice) -> None:
            async with gate:
                await device.link.close()

        await asyncio.gather(*(close(d) for d in self.devices), return_exceptions=True)
        await self.http.aclose()
