"""Deploying a version: its image prepared (built or present), its container started, healthy."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from pathlib import Path
from uuid import UUID

from modelyard_agent.containers.errors import BuildFailedError, DockerError
from modelyard_agent.containers.labels import deployment_labels
from modelyard_agent.containers.specs import (
    UNPRIVILEGED_USER,
    ContainerSpec,
    Fence,
    ManagedContainer,
    free_loopback_port,
    is_root_user,
)
from modelyard_agent.errors import PermanentError, TransientError
from modelyard_agent.store import DeploymentRecord
from modelyard_agent.workloads.cleanup import forget_version
from modelyard_agent.workloads.context import WorkloadContext
from modelyard_agent.workloads.files import prepare_files
from modelyard_agent.workloads.naming import (
    PROJECT_MOUNT,
    WRAPPER_MOUNT,
    built_image_tag,
    container_name,
    network_name,
    version_labels,
)
from modelyard_agent.workloads.serving import wait_healthy
from modelyard_common.contracts import DeploymentState, VersionSpec
from modelyard_common.manifest import Manifest, Protocol

#: Tries to start a container when another process took its probed port first.
PORT_ATTEMPTS = 3


async def deploy(
    ctx: WorkloadContext, record: DeploymentRecord, target: VersionSpec
) -> ManagedContainer:
    """Fetch, unpack, build and start a version; return its healthy container."""
    deployment_id = record.deployment_id
    project_dir = await prepare_files(ctx, record, target)
    await ctx.reporter.report(record, DeploymentState.building, version=target)
    image = await _prepare_image(ctx, deployment_id, target, project_dir)
    await ctx.reporter.report(record, DeploymentState.starting, version=target)
    container = await _start_container(ctx, deployment_id, target, image, project_dir)
    try:
        return await wait_healthy(ctx, container, target)
    except PermanentError:
        await ctx.docker.remove(container.id, 0)
        await forget_version(ctx, deployment_id, target.id)
        raise


async def _prepare_image(
    ctx: WorkloadContext, deployment_id: UUID, target: VersionSpec, project_dir: Path
) -> str:
    """Return the image the version runs on: built from its Dockerfile, or already here."""
    manifest = target.manifest
    if not manifest.dockerfile:
        image = manifest.image or ""
        if not await ctx.docker.image_exists(image):
            raise PermanentError(f"Image {image!r} is not on this device (nothing is pulled).")
        return image
    image = built_image_tag(deployment_id, target.id)
    if await ctx.docker.image_exists(image):
        return image
    if not await asyncio.to_thread((project_dir / "Dockerfile").is_file):
        raise PermanentError("The manifest asks for a Dockerfile build but the zip has none.")
    labels = version_labels(ctx.settings.device_id, deployment_id, target)
    try:
        await ctx.docker.build(project_dir, image, labels, ctx.settings.build_timeout_s)
    except BuildFailedError as exc:
        await forget_version(ctx, deployment_id, target.id)
        raise PermanentError(str(exc), exc.log_tail) from exc
    return image


async def _start_container(
    ctx: WorkloadContext, deployment_id: UUID, target: VersionSpec, image: str, project_dir: Path
) -> ManagedContainer:
    manifest = target.manifest
    if not math.isfinite(manifest.cores) or manifest.cores <= 0:
        raise PermanentError(
            f"Version {target.number} asks for {manifest.cores!r} cores: a CPU limit is a "
            "positive number."
        )
    fence = await _fence(ctx, deployment_id, manifest, image)
    environment = {**manifest.env, "PORT": str(manifest.port)}
    if fence.user == UNPRIVILEGED_USER:
        # `nobody` has no home; Python and most libraries want a writable one.
        environment.setdefault("HOME", "/tmp")
    mounts: dict[str, str] = {}
    command: list[str] | None = None
    working_dir: str | None = None
    if manifest.protocol is Protocol.handlers:
        command = [manifest.language, WRAPPER_MOUNT]
        mounts = {str(ctx.wrapper_path): WRAPPER_MOUNT}
        if not manifest.dockerfile:
            mounts[str(project_dir)] = PROJECT_MOUNT
            working_dir = PROJECT_MOUNT
            environment["MODELYARD_PROJECT_DIR"] = PROJECT_MOUNT
        # A built image runs in its own WORKDIR, with what its build steps made there; the
        # wrapper imports `main` from the working directory.
        environment.update(
            MODELYARD_MAIN=manifest.main,
            MODELYARD_HANDLERS=",".join(h.name for h in manifest.handlers),
            MODELYARD_INPUT_TYPE=manifest.input_type.value,
            MODELYARD_HEALTH_PATH=manifest.health_path,
            PYTHONDONTWRITEBYTECODE="1",
        )
    elif not manifest.dockerfile:
        mounts = {str(project_dir): PROJECT_MOUNT}
        command = [manifest.language, manifest.main]
        working_dir = PROJECT_MOUNT
        environment.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    last_error: DockerError | None = None
    for _ in range(PORT_ATTEMPTS):
        spec = ContainerSpec(
            name=container_name(target.model_name, deployment_id, target.id),
            image=image,
            labels=version_labels(ctx.settings.device_id, deployment_id, target),
            environment=environment,
            container_port=manifest.port,
            host_port=free_loopback_port(),
            mem_limit_mb=manifest.max_ram_mb,
            cores=manifest.cores,
            fence=fence,
            command=command,
            working_dir=working_dir,
            mounts=mounts,
        )
        try:
            return await ctx.docker.run(spec)
        except DockerError as exc:
            # Another process may have taken the port between our probe and Docker's bind.
            reason = str(exc)
            if "already allocated" not in reason and "already in use" not in reason:
                raise
            last_error = exc
    raise TransientError(str(last_error))


async def _fence(
    ctx: WorkloadContext, deployment_id: UUID, manifest: Manifest, image: str
) -> Fence:
    """Return how a version's container is fenced: see `Fence` and the README."""
    settings = ctx.settings
    fence = Fence(
        network=network_name(deployment_id),
        network_labels=deployment_labels(settings.device_id, deployment_id),
        pids_limit=settings.container_pids_limit,
        tmp_mb=settings.container_tmp_mb,
    )
    if manifest.run_as_root:
        # The opt-out: root with Docker's default capabilities and a writable root file
        # system; its own network, the pids limit and the CPU floor still hold.
        return replace(fence, user="0:0", read_only_rootfs=False, drop_capabilities=False)
    # An image that names a non-root user of its own (Dockerfile `USER app`) runs as that
    # user; one that would run as root runs as `nobody` instead.
    image_user = await ctx.docker.image_user(image)
    return replace(fence, user=UNPRIVILEGED_USER if is_root_user(image_user) else image_user)
