"""What a model container is made from (its spec and its fence) and what Docker says it is."""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from docker.models.containers import Container

from modelyard_agent.containers.labels import LABEL_DEPLOYMENT, LABEL_VERSION, label_uuid

#: The user a model runs as when neither the manifest nor a non-root `USER` of its image names
#: one: `nobody:nogroup`, present in every Debian-based image and owning nothing.
UNPRIVILEGED_USER = "65534:65534"
#: The smallest CPU limit Docker enforces (0.01 core). Zero `NanoCpus` means "no limit" to Docker,
#: so a smaller request is raised to this, never rounded down to nothing.
MIN_NANO_CPUS = 10_000_000


@dataclass(frozen=True, slots=True)
class Fence:
    """How a model container is kept apart from the device and from other deployments.

    The defaults are the fenced ones; `privileged_user()` is the manifest's opt-out
    (`run_as_root`), which keeps the network, the pids limit and the CPU floor.
    """

    network: str  # the deployment's own bridge network, made on demand
    network_labels: dict[str, str]
    pids_limit: int
    tmp_mb: int
    user: str = UNPRIVILEGED_USER
    read_only_rootfs: bool = True
    drop_capabilities: bool = True


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """Everything needed to create one model container."""

    name: str
    image: str
    labels: dict[str, str]
    environment: dict[str, str]
    container_port: int
    host_port: int
    mem_limit_mb: int
    cores: float
    fence: Fence
    command: list[str] | None = None
    working_dir: str | None = None
    mounts: dict[str, str] = field(default_factory=dict)  # host path -> container path (ro)


@dataclass(frozen=True, slots=True)
class ManagedContainer:
    """A container labelled as managed by this agent, as Docker reports it now."""

    id: str
    name: str
    status: str
    labels: dict[str, str]
    host_port: int | None
    restart_count: int
    exit_code: int | None
    network: str | None = None  # HostConfig.NetworkMode: "default"/"bridge" for old containers

    @property
    def deployment_id(self) -> UUID | None:
        """Return the deployment the container belongs to, if its label is readable."""
        return label_uuid(self.labels.get(LABEL_DEPLOYMENT))

    @property
    def version_id(self) -> UUID | None:
        """Return the model version the container runs, if its label is readable."""
        return label_uuid(self.labels.get(LABEL_VERSION))

    @property
    def running(self) -> bool:
        """Return whether the container's process is up."""
        return self.status == "running"


def describe(container: Container) -> ManagedContainer:
    """Return a container as the agent sees it (state, published port, labels)."""
    attrs = container.attrs
    state = attrs.get("State", {})
    host_config = attrs.get("HostConfig", {})
    ports = (host_config.get("PortBindings") or {}).values()
    host_port = None
    for bindings in ports:
        for binding in bindings or []:
            if binding.get("HostPort"):
                host_port = int(binding["HostPort"])
    return ManagedContainer(
        id=str(container.id),
        name=str(container.name),
        status=str(state.get("Status", container.status)),
        labels=dict(container.labels or {}),
        host_port=host_port,
        restart_count=int(attrs.get("RestartCount", 0)),
        exit_code=state.get("ExitCode"),
        network=host_config.get("NetworkMode"),
    )


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    """One sample of a container's resource use, as the engine's stats report it."""

    memory_bytes: int | None
    memory_limit_bytes: int | None
    cpu_ns: int | None  # the container's CPU time so far
    system_cpu_ns: int | None  # the host's CPU time so far (all cores)
    online_cpus: int | None


def usage_from_stats(stats: dict[str, Any]) -> ContainerUsage:
    """Return the memory and CPU counters of one `GET /containers/{id}/stats` answer."""
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage")
    counters = memory.get("stats") or {}
    # As `docker stats` shows it: without the page cache the kernel may drop at will.
    cache = counters.get("inactive_file", counters.get("total_inactive_file", 0))
    cpu = stats.get("cpu_stats") or {}
    return ContainerUsage(
        memory_bytes=max(int(usage) - int(cache or 0), 0) if usage is not None else None,
        memory_limit_bytes=memory.get("limit"),
        cpu_ns=(cpu.get("cpu_usage") or {}).get("total_usage"),
        system_cpu_ns=cpu.get("system_cpu_usage"),
        online_cpus=cpu.get("online_cpus"),
    )


def nano_cpus(cores: float, host_cpus: int | None) -> int:
    """Return Docker's `NanoCpus` for a CPU limit of `cores`: never 0 (which means unlimited).

    At least `MIN_NANO_CPUS`, at most every CPU of the host (Docker refuses more); a value that
    is not a positive finite number is refused with ValueError.
    """
    if not math.isfinite(cores) or cores <= 0:
        raise ValueError(f"a CPU limit must be a positive number of cores, not {cores!r}")
    nano = max(MIN_NANO_CPUS, round(cores * 1_000_000_000))
    if host_cpus:
        nano = min(nano, host_cpus * 1_000_000_000)
    return nano


def is_root_user(user: str | None) -> bool:
    """Return whether a Docker `User` value runs as root (empty means the image's root)."""
    name = (user or "").split(":", 1)[0].strip()
    return name in ("", "0", "root")


def free_loopback_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
