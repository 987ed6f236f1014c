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


class DockerError(RuntimeError):
    """A Docker operation failed; the message is fit for a deployment report."""


class BuildFailedError(DockerError):
    """`docker build` of a project failed; `log_tail` holds the end of the build output."""

    def __init__(self, message: str, log_tail: list[str]) -> None:
        super().__init__(message)
        self.log_tail = log_tail


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
            await self._call(self._client.close)
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
        """Create and start a container from `spec`; return it as Docker reports it."""

        def create() -> ManagedContainer:
            client = self._docker()
            with contextlib.suppress(docker.errors.NotFound):
                # A container of that name is a leftover of an interrupted attempt.
                client.containers.get(spec.name).remove(force=True)
            volumes = {host: {"bind": inner, "mode": "ro"} for host, inner in spec.mounts.items()}
            container = client.containers.run(
                spec.image,
                command=spec.command,
                name=spec.name,
                detach=True,
                labels=spec.labels,
                environment=spec.environment,
                ports={f"{spec.container_port}/tcp": ("127.0.0.1", spec.host_port)},
                mem_limit=f"{spec.mem_limit_mb}m",
                memswap_limit=f"{spec.mem_limit_mb}m",
                nano_cpus=int(spec.cores * 1_000_000_000),
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
    ports = (attrs.get("HostConfig", {}).get("PortBindings") or {}).values()
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
    )


def _explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)
