"""The heartbeat: the device's capabilities and deployments with their health, sent now or never."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelyard_agent import __version__
from modelyard_agent.containers.engine import DockerEngine
from modelyard_agent.reports.deployments import agent_source
from modelyard_agent.reports.health import HealthSampler
from modelyard_agent.reports.outbox import ReportOutbox
from modelyard_agent.settings import AgentSettings
from modelyard_agent.store import DeploymentRecord, DesiredStateStore
from modelyard_common.contracts import (
    DEVICE_HEARTBEAT,
    Capabilities,
    DeploymentHealth,
    DeviceHeartbeat,
)
from modelyard_common.events import CloudEvent, new_event


@dataclass(eq=False)
class Heartbeats:
    """Sends a heartbeat every `heartbeat_interval_s` while the broker is reachable."""

    settings: AgentSettings
    store: DesiredStateStore
    docker: DockerEngine
    outbox: ReportOutbox
    health: HealthSampler
    # Set by the app once the data dir is ready (see `reports.epoch`).
    agent_epoch: str | None = field(default=None, init=False)

    async def run(self) -> None:
        """Send heartbeats forever (a missed one is not resent: the next one follows)."""
        interval = self.settings.heartbeat_interval_s
        while True:
            started = time.monotonic()
            with contextlib.suppress(Exception):
                await self.outbox.send_now(await self.heartbeat_event())
            # One every interval, however long sampling took: the deployer counts intervals.
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def heartbeat_event(self) -> CloudEvent:
        """Return a heartbeat event with the device's capabilities and deployments' health."""
        records = [r for r in self.store.all() if not r.is_tombstone]
        # At most half an interval (and 5 s): a slow engine delays no heartbeat by much.
        await self.health.refresh(
            records, timeout_s=min(5.0, self.settings.heartbeat_interval_s / 2)
        )
        heartbeat = DeviceHeartbeat(
            device_id=self.settings.device_id,
            agent_version=__version__,
            capabilities=await self.capabilities(),
            advertise_host=self.settings.advertise_host,
            sent_at=datetime.now(UTC),
            deployments=[_summary(r, self.health.latest(r.deployment_id)) for r in records],
            agent_epoch=self.agent_epoch,
            interval_s=self.settings.heartbeat_interval_s,
        )
        return new_event(
            type=DEVICE_HEARTBEAT,
            source=agent_source(self.settings),
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


def _ram_mb() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError):
        return None


def _summary(record: DeploymentRecord, health: DeploymentHealth) -> dict[str, Any]:
    active = record.active_version
    return {
        "deployment_id": str(record.deployment_id),
        "generation": record.command.generation,
        "state": record.state.value,
        "desired_state": record.command.desired_state.value,
        "version_id": str(active.id) if active else None,
        "host_port": record.host_port,
        "health": health.model_dump(mode="json"),
    }
