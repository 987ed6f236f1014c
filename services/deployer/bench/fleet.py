"""A fleet of simulated devices speaking the agent's protocol over the real broker and HTTP.

Each simulated device consumes its own `device.<id>` quorum queue, sends heartbeats at the
agent's interval, and answers a deploy command like an agent would: downloads the artifact with
its device token (HTTP), then reports `downloading`, `verifying`, `building`, `starting`,
`running`, one report per state, each with a growing sequence.

Everything about *how a device talks to the broker* lives in `FleetLink`: today the devices of
one link share one AMQP connection and publish as that connection's user. When devices get
broker users of their own (one login per device, `user_id` checked by the broker), change
`FleetLink` to open one connection per device with its credentials and set `user_id` on each
message; `SimulatedDevice` and the benchmark do not change.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from aio_pika.abc import AbstractIncomingMessage

from modelyard_common.contracts import (
    DEPLOYMENT_REPORTED,
    DEVICE_HEARTBEAT,
    DEVICES_EXCHANGE,
    EVENTS_EXCHANGE,
    DeviceCommand,
)
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


class FleetLink:
    """One broker connection shared by some devices: consumes their queues, publishes for them."""

    def __init__(self, amqp_url: str, *, prefetch: int = 4) -> None:
        self.broker = Broker(amqp_url, prefetch=prefetch)

    async def connect(self) -> None:
        await self.broker.connect(timeout=30)

    async def listen(
        self, device_id: uuid.UUID, on_command: Callable[[CloudEvent], asyncio.Future[None]]
    ) -> None:
        """Declare the device's queue as the agent does and consume it."""
        name = f"device.{device_id}"
        queue = await self.broker.declare_queue(name, [Binding(DEVICES_EXCHANGE, name)])

        async def deliver(message: AbstractIncomingMessage) -> None:
            event = CloudEvent.model_validate_json(message.body)
            await on_command(event)
            await message.ack()

        await queue.consume(deliver)

    async def publish(self, device_id: uuid.UUID, event: CloudEvent) -> None:
        """Publish an event as the device (confirmed by the broker)."""
        await self.broker.publish(event, exchange=EVENTS_EXCHANGE, routing_key=event.type)

    async def close(self) -> None:
        await self.broker.close()


@dataclass
class SimulatedDevice:
    """One device: its identity, its link, and what it holds."""

    id: uuid.UUID
    token: str
    link: FleetLink
    stats: FleetStats
    http: httpx.AsyncClient
    download: bool = True
    sequences: dict[uuid.UUID, int] = field(default_factory=dict)

    def heartbeat_event(self) -> CloudEvent:
        return new_event(
            type=DEVICE_HEARTBEAT,
            source=f"modelyard-agent/{self.id}",
            subject=str(self.id),
            data={
                "device_id": str(self.id),
                "agent_version": AGENT_VERSION,
                "capabilities": {"arch": "x86_64", "ram_mb": 4096, "cpus": 4, "disk_free_mb": 9000},
                "advertise_host": "127.0.0.1",
                "sent_at": datetime.now(UTC).isoformat(),
                "deployments": [],
            },
        )

    async def heartbeat(self) -> None:
        await self.link.publish(self.id, self.heartbeat_event())
        self.stats.heartbeats += 1

    async def on_command(self, event: CloudEvent) -> None:
        """Take a command off the queue; its work goes on in the background (acked at once)."""
        command = DeviceCommand.model_validate(event.data)
        self.stats.command()
        task = asyncio.create_task(self.carry_out(command))
        _running.add(task)
        task.add_done_callback(_running.discard)

    async def carry_out(self, command: DeviceCommand) -> None:
        for state in REPORTED_STATES:
            if state == "verifying" and self.download:
                await self.fetch(command.version.artifact_url)
            await self.report(command, state)

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
        await self.link.publish(self.id, event)
        self.stats.report()


_running: set[asyncio.Task[None]] = set()


class Fleet:
    """N simulated devices over a few shared links, heartbeating at the agent's interval."""

    def __init__(
        self,
        amqp_url: str,
        devices: list[tuple[uuid.UUID, str]],
        *,
        deployer_url: str,
        heartbeat_interval_s: float,
        devices_per_link: int = 250,
        download: bool = True,
    ) -> None:
        self.amqp_url = amqp_url
        self.identities = devices
        self.heartbeat_interval_s = heartbeat_interval_s
        self.devices_per_link = devices_per_link
        self.stats = FleetStats()
        self.http = httpx.AsyncClient(
            base_url=deployer_url,
            timeout=60,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
        )
        self.download = download
        self.links: list[FleetLink] = []
        self.devices: list[SimulatedDevice] = []
        self._pulse: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect the links, declare and consume every device queue, start the heartbeats."""
        for offset in range(0, len(self.identities), self.devices_per_link):
            link = FleetLink(self.amqp_url)
            await link.connect()
            self.links.append(link)
            for device_id, token in self.identities[offset : offset + self.devices_per_link]:
                device = SimulatedDevice(
                    device_id, token, link, self.stats, self.http, download=self.download
                )
                await link.listen(device_id, device.on_command)  # type: ignore[arg-type]
                self.devices.append(device)
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
        if self._pulse is not None:
            self._pulse.cancel()
        for task in list(_running):
            task.cancel()
        await asyncio.gather(*_running, return_exceptions=True)
        for link in self.links:
            await link.close()
        await self.http.aclose()
