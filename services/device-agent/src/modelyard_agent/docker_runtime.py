"""Docker Engine access for the agent; every SDK call runs on a dedicated thread pool.

The Docker SDK is blocking, so no method here touches it on the event loop. A cancelled caller
still waits for the SDK call in flight to finish (it cannot be interrupted), so whoever runs next
sees Docker in a settled state: no container half-created behind its back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import docker
import docker.errors
from docker.models.containers import Container

log = logging.getLogger("modelyard.agent.docker")

T = TypeVar("T")

LABEL_MANAGED = "io.modelyard.managed"
LABEL_DEVICE = "io.modelyard.device"
LABEL_MODEL = "io.modelyard.model"
LABEL_MODEL_NAME = "io.modelyard.model-name"
LABEL_VERSION = "io.modelyard.version"
LABEL_DEPLOYMENT = "io.modelyard.deployment"

#: The user a model runs as when neither the manifest nor a non-root `USER` of its image names
#: one: `nobody:nogroup`, present in every Debian-based image and owning nothing.
UNPRIVILEGED_USER = "65534:65534"
#: The smallest CPU limit Docker enforces (0.01 core). Zero `NanoCpus` means "no limit" to Docker,
#: so a smaller request is raised to this, never rounded down to nothing.
MIN_NANO_CPUS = 10_000_000
#: Per-deployment networks: no traffic between containers on the same bridge either (an old and
#: a new version of a deployment do not need to talk). Published ports and outbound traffic work.
NETWORK_OPTIONS = {"com.docker.network.bridge.enable_icc": "false"}


class DockerError(RuntimeError):
    """A Docker operation failed; the message is fit for a deployment report."""


class NetworkPoolExhaustedError(DockerError):
    """The engine has no free address range left for another deployment network."""


class BuildFailedError(DockerError):
    """`docker build` of a project failed; `log_tail` holds the end of the build output."""

    def __init__(self, message: str, log_tail: list[str]) -> None:
        super().__init__(message)
        self.log_tail = log_tail


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
        return _uuid_or_none(self.labels.get(LABEL_DEPLOYMENT))

    @property
    def version_id(self) -> UUID | None:
        """Return the model version the container runs, if its label is readable."""
        return _uuid_or_none(self.labels.get(LABEL_VERSION))

    @property
    def running(self) -> bool:
        """Return whether the container's process is up."""
        return self.status == "running"


def _uuid_or_none(value: str | None) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


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


class DockerRuntime:
    """The agent's view of the Docker Engine, scoped to the containers of one device."""

    def __init__(self, device_id: UUID, *, workers: int = 4) -> None:
        self.device_id = str(device_id)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="docker")
        self._client: docker.DockerClient | None = None
        self._host_cpus: int | None = None

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(function, *args, **kwargs))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await future
            raise

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            # from_env honours DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH.
            self._client = docker.from_env(timeout=120)
        return self._client

    async def close(self) -> None:
        """Release the client and the thread pool."""
        if self._client is not None:
            client, self._client = self._client, None
            await self._call(client.close)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- facts about the engine ------------------------------------------------------------

    async def engine_facts(self) -> dict[str, Any]:
        """Return the engine's version, architecture, CPU count and memory."""

        def facts() -> dict[str, Any]:
            info = self._docker().info()
            version = self._docker().version()
            return {
                "docker_version": version.get("Version"),
                "arch": info.get("Architecture"),
                "cpus": info.get("NCPU"),
                "ram_mb": int(info.get("MemTotal", 0)) // (1024 * 1024) or None,
            }

        return await self._call(facts)

    # -- containers ------------------------------------------------------------------------

    async def list_managed(self, deployment_id: UUID | None = None) -> list[ManagedContainer]:
        """Return this device's managed containers (all, or those of one deployment)."""
        filters = [f"{LABEL_MANAGED}=true", f"{LABEL_DEVICE}={self.device_id}"]
        if deployment_id is not None:
            filters.append(f"{LABEL_DEPLOYMENT}={deployment_id}")

        def listing() -> list[ManagedContainer]:
            found = self._docker().containers.list(
                all=True, ignore_removed=True, filters={"label": filters}
            )
            return [_describe(c) for c in found]

        return await self._call(listing)

    async def inspect(self, container_id: str) -> ManagedContainer | None:
        """Return the current state of a container, or None if it is gone."""

        def look() -> ManagedContainer | None:
            try:
                return _describe(self._docker().containers.get(container_id))
            except docker.errors.NotFound:
                return None

        return await self._call(look)

    async def run(self, spec: ContainerSpec) -> ManagedContainer:
        """Create and start a container from `spec`, in its fence; return it as Docker reports it.

        The deployment's network is made first if missing (see `ensure_network`).
        """
        fence = spec.fence

        def create() -> ManagedContainer:
            client = self._docker()
            with contextlib.suppress(docker.errors.NotFound):
                # A container of that name is a leftover of an interrupted attempt.
                client.containers.get(spec.name).remove(force=True)
            self._ensure_network(client, fence.network, fence.network_labels)
            if self._host_cpus is None:
                self._host_cpus = int(client.info().get("NCPU") or 0) or None
            volumes = {host: {"bind": inner, "mode": "ro"} for host, inner in spec.mounts.items()}
            container = client.containers.run(
                spec.image,
                command=spec.command,
                name=spec.name,
                detach=True,
                labels=spec.labels,
                environment=spec.environment,
                network=fence.network,
                ports={f"{spec.container_port}/tcp": ("127.0.0.1", spec.host_port)},
                mem_limit=f"{spec.mem_limit_mb}m",
                memswap_limit=f"{spec.mem_limit_mb}m",
                nano_cpus=nano_cpus(spec.cores, self._host_cpus),
                pids_limit=fence.pids_limit,
                user=fence.user,
                read_only=fence.read_only_rootfs,
                # Scratch space and HOME for an unprivileged user (counted in the memory limit).
                tmpfs={"/tmp": f"rw,nosuid,nodev,size={fence.tmp_mb}m,mode=1777"},
                cap_drop=["ALL"] if fence.drop_capabilities else None,
                restart_policy={"Name": "on-failure", "MaximumRetryCount": 5},
                working_dir=spec.working_dir,
                volumes=volumes,
                # A tiny init as PID 1 forwards SIGTERM, so a stop takes milliseconds, not the
                # whole stop timeout (Python as PID 1 ignores SIGTERM).
                init=True,
                security_opt=["no-new-privileges"],
            )
            container.reload()
            return _describe(container)

        try:
            return await self._call(create)
        except docker.errors.ImageNotFound as exc:
            raise DockerError(f"Image {spec.image!r} is not on this device.") from exc
        except docker.errors.APIError as exc:
            raise DockerError(f"Docker could not start the container: {_explain(exc)}") from exc

    # -- networks --------------------------------------------------------------------------

    def _ensure_network(
        self, client: docker.DockerClient, name: str, labels: dict[str, str]
    ) -> None:
        """Make the deployment's bridge network unless it is there (and ours)."""
        try:
            existing = client.networks.get(name)
        except docker.errors.NotFound:
            pass
        else:
            mine = existing.attrs.get("Labels") or {}
            if mine.get(LABEL_DEVICE) != self.device_id or mine.get(LABEL_MANAGED) != "true":
                raise DockerError(f"Network {name!r} exists and is not this agent's.")
            return
        try:
            client.networks.create(
                name,
                driver="bridge",
                options=NETWORK_OPTIONS,
                labels=labels,
                check_duplicate=True,
                internal=False,
            )
        except docker.errors.APIError as exc:
            reason = _explain(exc)
            if "available" in reason and "pool" in reason:
                raise NetworkPoolExhaustedError(
                    "Docker has no free address range for another deployment network; widen "
                    f"`default-address-pools` in the engine's daemon.json ({reason})."
                ) from exc
            raise

    async def remove_networks(self, deployment_id: UUID | None = None) -> list[str]:
        """Remove this device's deployment networks (all, or one deployment's); return names.

        A network a container is still attached to stays (Docker refuses); the next sweep
        takes it once the container is gone.
        """
        filters = [f"{LABEL_MANAGED}=true", f"{LABEL_DEVICE}={self.device_id}"]
        if deployment_id is not None:
            filters.append(f"{LABEL_DEPLOYMENT}={deployment_id}")

        def remove() -> list[str]:
            removed = []
            for network in self._docker().networks.list(filters={"label": filters}):
                try:
                    network.remove()
                except docker.errors.NotFound:
                    continue
                except docker.errors.APIError as exc:
                    log.info("network %s stays for now: %s", network.name, _explain(exc))
                    continue
                removed.append(str(network.name))
            return removed

        return await self._call(remove)

    async def managed_networks(self) -> list[tuple[str, dict[str, str]]]:
        """Return (name, labels) of the deployment networks this device's agent made."""
        filters = [f"{LABEL_MANAGED}=true", f"{LABEL_DEVICE}={self.device_id}"]

        def listing() -> list[tuple[str, dict[str, str]]]:
            found = self._docker().networks.list(filters={"label": filters})
            return [(str(n.name), dict(n.attrs.get("Labels") or {})) for n in found]

        return await self._call(listing)

    async def remove_network(self, name: str) -> None:
        """Remove one network by name (gone already, or still in use, is fine)."""

        def remove() -> None:
            try:
                self._docker().networks.get(name).remove()
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                log.info("network %s stays for now: %s", name, _explain(exc))

        await self._call(remove)

    # -- containers, continued -------------------------------------------------------------

    async def start(self, container_id: str) -> None:
        """Start a stopped container."""
        await self._call(lambda: self._docker().containers.get(container_id).start())

    async def restart(self, container_id: str, timeout_s: int) -> None:
        """Restart a container, giving its process `timeout_s` to stop."""
        await self._call(
            lambda: self._docker().containers.get(container_id).restart(timeout=timeout_s)
        )

    async def stop(self, container_id: str, timeout_s: int) -> None:
        """Stop a container (gone already is fine)."""

        def stop() -> None:
            with contextlib.suppress(docker.errors.NotFound):
                self._docker().containers.get(container_id).stop(timeout=timeout_s)

        await self._call(stop)

    async def remove(self, container_id: str, timeout_s: int) -> None:
        """Stop and remove a container (gone already is fine)."""

        def remove() -> None:
            try:
                container = self._docker().containers.get(container_id)
            except docker.errors.NotFound:
                return
            with contextlib.suppress(docker.errors.APIError):
                container.stop(timeout=timeout_s)
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)

        await self._call(remove)

    async def logs(self, container_id: str, tail: int) -> list[str]:
        """Return the last `tail` lines a container wrote (empty if it is gone)."""

        def read() -> list[str]:
            try:
                raw = self._docker().containers.get(container_id).logs(tail=tail)
            except docker.errors.NotFound:
                return []
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            return text.splitlines()[-tail:]

        return await self._call(read)

    # -- images ----------------------------------------------------------------------------

    async def image_user(self, reference: str) -> str:
        """Return the `USER` an image runs as ("" for root by default)."""

        def look() -> str:
            image = self._docker().images.get(reference)
            return str((image.attrs.get("Config") or {}).get("User") or "")

        try:
            return await self._call(look)
        except docker.errors.ImageNotFound as exc:
            raise DockerError(f"Image {reference!r} is not on this device.") from exc

    async def image_exists(self, reference: str) -> bool:
        """Return whether an image is present locally."""

        def look() -> bool:
            try:
                self._docker().images.get(reference)
            except docker.errors.ImageNotFound:
                return False
            return True

        return await self._call(look)

    async def build(self, context: Path, tag: str, labels: dict[str, str], timeout_s: float) -> str:
        """Build the Dockerfile in `context` as `tag`; return the image id.

        Never pulls: every image a project may use is built or imported locally.
        """

        def build() -> str:
            # A client of its own: a build may take far longer than the usual call timeout.
            client = docker.from_env(timeout=int(timeout_s)).api
            lines: list[str] = []
            image_id: str | None = None
            try:
                for chunk in client.build(
                    path=str(context),
                    tag=tag,
                    labels=labels,
                    rm=True,
                    forcerm=True,
                    pull=False,
                    decode=True,
                ):
                    if "stream" in chunk:
                        lines.extend(str(chunk["stream"]).rstrip("\n").splitlines())
                    if "aux" in chunk and "ID" in chunk["aux"]:
                        image_id = str(chunk["aux"]["ID"])
                    if "error" in chunk:
                        lines.append(str(chunk["error"]).rstrip())
                        raise BuildFailedError(
                            f"docker build failed: {str(chunk['error']).strip()}", lines[-50:]
                        )
            except docker.errors.APIError as exc:
                message = f"docker build failed: {_explain(exc)}"
                raise BuildFailedError(message, lines[-50:]) from exc
            finally:
                client.close()
            if image_id is None:
                image_id = str(self._docker().images.get(tag).id)
            return image_id

        return await self._call(build)

    async def remove_image(self, reference: str) -> None:
        """Remove an image built for a deployment (absent already is fine)."""

        def remove() -> None:
            with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.NotFound):
                self._docker().images.remove(reference, force=True, noprune=False)

        await self._call(remove)

    async def managed_images(self) -> list[tuple[str, dict[str, str]]]:
        """Return (tag or id, labels) of images this device's agent built."""
        filters = [f"{LABEL_MANAGED}=true", f"{LABEL_DEVICE}={self.device_id}"]

        def listing() -> list[tuple[str, dict[str, str]]]:
            images = self._docker().images.list(filters={"label": filters})
            return [(i.tags[0] if i.tags else str(i.id), dict(i.labels or {})) for i in images]

        return await self._call(listing)


def _describe(container: Container) -> ManagedContainer:
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


def _explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)
