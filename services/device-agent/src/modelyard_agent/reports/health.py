"""Per-deployment health for heartbeats: the last probe, restarts, memory and CPU use.

Sampled once per heartbeat for each deployment desired running: its serving container, else the
one being brought up (a crash-looping or hung container is what health is for). Every Docker
call runs on the engine's own threads, never on the event loop, and each is cheap: one listing,
one one-shot stats read per container, one call to its health path. CPU use is the difference
between two samples, so the first heartbeat after a container starts has none. A sample that
takes too long is cut short; the heartbeat then carries what the previous samples found.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from uuid import UUID

import httpx

from modelyard_agent.containers.runtime import DockerRuntime
from modelyard_agent.containers.specs import ContainerUsage, ManagedContainer
from modelyard_agent.store import DeploymentRecord
from modelyard_common.contracts import DeploymentHealth, DesiredState

log = logging.getLogger("modelyard.agent.health")

PROBE_TIMEOUT_S = 2.0  # at most; less when the heartbeat interval is short
#: Stats reads at a time, so reconciliation keeps threads of the Docker pool.
STATS_CONCURRENCY = 2
MB = 2**20


class HealthSampler:
    """Keeps the latest health of each deployment, refreshed before each heartbeat."""

    def __init__(self, docker: DockerRuntime, http: httpx.AsyncClient) -> None:
        self.docker = docker
        self.http = http
        self._latest: dict[UUID, DeploymentHealth] = {}
        self._cpu: dict[str, tuple[int, int]] = {}  # container id -> (cpu ns, system ns)
        self._stats_slots = asyncio.Semaphore(STATS_CONCURRENCY)

    def latest(self, deployment_id: UUID) -> DeploymentHealth:
        """Return what the last samples found for a deployment (all None if nothing yet)."""
        return self._latest.get(deployment_id) or DeploymentHealth()

    async def refresh(self, records: list[DeploymentRecord], *, timeout_s: float) -> None:
        """Sample every deployment that should be serving, within `timeout_s` in all."""
        containers: list[ManagedContainer] | None = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                try:
                    containers = await self.docker.list_managed()
                except Exception as exc:  # Docker unreachable: the probes still tell something
                    log.info("health: containers not listed (%s)", exc)
                # A probe ends within the budget: one cut short by it would say nothing.
                probe_timeout = min(PROBE_TIMEOUT_S, timeout_s * 0.8)
                await asyncio.gather(
                    *(self._sample(r, containers or [], probe_timeout) for r in records)
                )
        for gone in set(self._latest) - {r.deployment_id for r in records}:
            del self._latest[gone]
        if containers is not None:
            for stale in set(self._cpu) - {c.id for c in containers}:
                del self._cpu[stale]

    async def _sample(
        self, record: DeploymentRecord, containers: list[ManagedContainer], probe_timeout: float
    ) -> None:
        if record.command.desired_state is not DesiredState.running:
            self._latest[record.deployment_id] = DeploymentHealth()
            return
        # The serving version, else the one being brought up: a container that crash-loops
        # or hangs while its deployment reads `failed` is what health is for.
        versions = {v.id: v for v in (record.command.version, record.active_version) if v}
        mine = [
            c
            for c in containers
            if c.deployment_id == record.deployment_id and c.version_id in versions
        ]
        active = record.active_version.id if record.active_version else None
        mine.sort(key=lambda c: (c.version_id != active, not c.running))
        if not mine:
            self._latest[record.deployment_id] = DeploymentHealth()
            return
        serving = mine[0]
        health = self.latest(record.deployment_id).model_copy()
        self._latest[record.deployment_id] = health
        health.restarts = serving.restart_count
        steps = [self._sample_usage(health, serving)]
        spec = versions[serving.version_id] if serving.version_id else None
        if serving.host_port is not None and spec is not None:
            url = f"http://127.0.0.1:{serving.host_port}{spec.manifest.health_path}"
            steps.append(self._probe(health, url, probe_timeout))
        await asyncio.gather(*steps)

    async def _sample_usage(self, health: DeploymentHealth, container: ManagedContainer) -> None:
        async with self._stats_slots:
            try:
                usage = await self.docker.usage(container.id)
            except Exception as exc:
                log.info("health: no stats for %s (%s)", container.name, exc)
                return
        if usage is None:
            return
        health.sampled_at = datetime.now(UTC)
        health.memory_mb = _mb(usage.memory_bytes)
        health.memory_limit_mb = _mb(usage.memory_limit_bytes)
        health.cpu_percent = self._cpu_percent(container.id, usage)

    def _cpu_percent(self, container_id: str, usage: ContainerUsage) -> float | None:
        if usage.cpu_ns is None or usage.system_cpu_ns is None:
            return None
        previous = self._cpu.get(container_id)
        self._cpu[container_id] = (usage.cpu_ns, usage.system_cpu_ns)
        if previous is None:
            return None
        cpu_delta = usage.cpu_ns - previous[0]
        system_delta = usage.system_cpu_ns - previous[1]
        if system_delta <= 0 or cpu_delta < 0:
            return None
        return round(cpu_delta / system_delta * (usage.online_cpus or 1) * 100, 2)

    async def _probe(self, health: DeploymentHealth, url: str, timeout_s: float) -> None:
        try:
            response = await self.http.get(url, timeout=timeout_s)
        except httpx.HTTPError as exc:
            health.probe_ok, health.probe_status = False, None
            health.probe_error = (str(exc) or type(exc).__name__)[:200]
        else:
            health.probe_ok = response.status_code < 400
            health.probe_status = response.status_code
            health.probe_error = None
        health.probed_at = datetime.now(UTC)


def _mb(value: int | None) -> float | None:
    return round(value / MB, 1) if value is not None else None
