"""The agent's view of the Docker Engine: one device's model containers, networks and images."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Protocol
from uuid import UUID

import docker
import docker.errors

from modelyard_agent.containers.errors import DockerError, explain
from modelyard_agent.containers.images import ImageOps
from modelyard_agent.containers.networks import NetworkOps
from modelyard_agent.containers.specs import (
    ContainerSpec,
    ContainerUsage,
    ManagedContainer,
    describe,
    nano_cpus,
    usage_from_stats,
)


class LogBytes(Protocol):
    """An open stream of a container's log output: iterate it (blocking); `close` ends it."""

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class DockerRuntime(NetworkOps, ImageOps):
    """The agent's view of the Docker Engine, scoped to the containers of one device."""

    async def list_managed(self, deployment_id: UUID | None = None) -> list[ManagedContainer]:
        """Return this device's managed containers (all, or those of one deployment)."""

        def listing() -> list[ManagedContainer]:
            found = self._docker().containers.list(
                all=True, ignore_removed=True, filters=self._filters(deployment_id)
            )
            return [describe(c) for c in found]

        return await self._call(listing)

    async def inspect(self, container_id: str) -> ManagedContainer | None:
        """Return the current state of a container, or None if it is gone."""

        def look() -> ManagedContainer | None:
            try:
                return describe(self._docker().containers.get(container_id))
            except docker.errors.NotFound:
                return None

        return await self._call(look)

    async def usage(self, container_id: str) -> ContainerUsage | None:
        """Return one sample of a container's memory and CPU use, None if it is gone.

        A one-shot read (no second sample to wait for): the caller derives CPU use from two.
        """

        def sample() -> ContainerUsage | None:
            try:
                stats = self._docker().api.stats(container_id, stream=False, one_shot=True)
            except docker.errors.NotFound:
                return None
            return usage_from_stats(stats)

        return await self._call(sample)

    async def run(self, spec: ContainerSpec) -> ManagedContainer:
        """Create and start a container from `spec`, in its fence; return it as Docker reports it.

        The deployment's network is made first if missing (see `_ensure_network`).
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
            return describe(container)

        try:
            return await self._call(create)
        except docker.errors.ImageNotFound as exc:
            raise DockerError(f"Image {spec.image!r} is not on this device.") from exc
        except docker.errors.APIError as exc:
            raise DockerError(f"Docker could not start the container: {explain(exc)}") from exc

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

    async def open_logs(
        self, container_id: str, *, tail: int, follow: bool, since: datetime | None
    ) -> LogBytes | None:
        """Open a stream of what a container wrote (stdout and stderr); None if it is gone.

        Only opening runs on the engine's pool; reading the stream blocks, so the caller reads
        it on a thread of its own, and `close` (from any thread) ends a read that waits.
        """

        def open_stream() -> LogBytes | None:
            try:
                stream: LogBytes = self._docker().api.logs(
                    container_id,
                    stdout=True,
                    stderr=True,
                    stream=True,
                    follow=follow,
                    tail=tail,
                    since=since,
                )
            except docker.errors.NotFound:
                return None
            return stream

        try:
            return await self._call(open_stream)
        except docker.errors.APIError as exc:
            raise DockerError(f"Docker could not read the logs: {explain(exc)}") from exc
