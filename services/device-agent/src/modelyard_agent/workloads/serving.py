"""A container becomes the one serving its model: once its health path answers, it is routed."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx

from modelyard_agent.containers.errors import DockerError
from modelyard_agent.containers.specs import ManagedContainer
from modelyard_agent.errors import PermanentError, TransientError
from modelyard_agent.routes import Route
from modelyard_agent.store import DeploymentRecord
from modelyard_agent.workloads.context import WorkloadContext
from modelyard_common.contracts import VersionSpec

# A container that crashed this many times while we waited for its health path will not recover.
CRASH_LIMIT = 2


async def wait_healthy(
    ctx: WorkloadContext, container: ManagedContainer, target: VersionSpec
) -> ManagedContainer:
    """Return the container once its health path answers; raise `PermanentError` if never."""
    settings = ctx.settings
    manifest = target.manifest
    deadline = time.monotonic() + settings.health_timeout_s
    next_inspect = 0.0
    current: ManagedContainer | None = container
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_inspect:
            current = await ctx.docker.inspect(container.id)
            next_inspect = now + 1.0
            if current is None:
                raise TransientError("the container disappeared while starting")
            crashed = current.restart_count >= CRASH_LIMIT or current.status in ("exited", "dead")
            if crashed and current.status != "running":
                break
        if current is not None and current.host_port is not None:
            url = f"http://127.0.0.1:{current.host_port}{manifest.health_path}"
            with contextlib.suppress(httpx.HTTPError):
                response = await ctx.http.get(url, timeout=2.0)
                if response.status_code < 400:
                    return current
        await asyncio.sleep(settings.health_interval_s)
    tail = await ctx.docker.logs(container.id, settings.log_tail_lines)
    state = current.status if current is not None else "gone"
    raise PermanentError(
        f"Version {target.number} did not answer {manifest.health_path} within "
        f"{settings.health_timeout_s:g}s (container {state}).",
        tail,
    )


def is_routed(ctx: WorkloadContext, spec: VersionSpec, container: ManagedContainer) -> bool:
    """Return whether `container` is the one serving the model's calls now."""
    route = ctx.routes.get(spec.model_name)
    return route is not None and route.container_id == container.id


def serve(
    ctx: WorkloadContext, record: DeploymentRecord, spec: VersionSpec, container: ManagedContainer
) -> int:
    """Route the model's calls to `container` (healthy); return its published port."""
    if container.host_port is None:
        raise DockerError("the container has no published port")
    ctx.routes.switch(
        Route(
            model_name=spec.model_name,
            deployment_id=record.deployment_id,
            version_id=spec.id,
            container_id=container.id,
            host_port=container.host_port,
        )
    )
    return container.host_port
