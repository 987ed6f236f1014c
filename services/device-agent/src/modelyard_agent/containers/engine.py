"""The connection to the Docker Engine; every SDK call runs on a dedicated thread pool.

The Docker SDK is blocking, so nothing in this package touches it on the event loop. A cancelled
caller still waits for the SDK call in flight to finish (it cannot be interrupted), so whoever
runs next sees Docker in a settled state: no container half-created behind its back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from uuid import UUID

import docker

from modelyard_agent.containers.labels import label_filters

T = TypeVar("T")


class DockerEngine:
    """One device's client of the engine: the SDK client, its thread pool, the device's filters."""

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

    def _filters(self, deployment_id: UUID | None = None) -> dict[str, list[str]]:
        return {"label": label_filters(self.device_id, deployment_id)}

    async def close(self) -> None:
        """Release the client and the thread pool."""
        if self._client is not None:
            client, self._client = self._client, None
            await self._call(client.close)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def engine_facts(self) -> dict[str, Any]:
        """Return the engine's version, architecture, CPU count, memory and data root."""

        def facts() -> dict[str, Any]:
            info = self._docker().info()
            version = self._docker().version()
            return {
                "docker_version": version.get("Version"),
                "arch": info.get("Architecture"),
                "cpus": info.get("NCPU"),
                "ram_mb": int(info.get("MemTotal", 0)) // (1024 * 1024) or None,
                "docker_root_dir": info.get("DockerRootDir"),
            }

        return await self._call(facts)
