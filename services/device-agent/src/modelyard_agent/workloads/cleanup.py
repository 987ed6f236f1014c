"""Taking away what no longer serves: old versions, and whatever a removed deployment left."""

from __future__ import annotations

import logging
from uuid import UUID

from modelyard_agent.containers.labels import LABEL_DEPLOYMENT, label_uuid
from modelyard_agent.containers.specs import ManagedContainer
from modelyard_agent.workloads.context import WorkloadContext
from modelyard_agent.workloads.files import delete_version_files
from modelyard_agent.workloads.naming import built_image_tag

log = logging.getLogger("modelyard.agent.reconciler")


async def retire(ctx: WorkloadContext, deployment_id: UUID, container: ManagedContainer) -> None:
    """Stop and remove an old version's container, its built image and its files."""
    await ctx.routes.drain(container.id, ctx.settings.drain_timeout_s)
    await ctx.docker.remove(container.id, ctx.settings.stop_timeout_s)
    if container.version_id is not None:
        await forget_version(ctx, deployment_id, container.version_id)


async def forget_version(ctx: WorkloadContext, deployment_id: UUID, version_id: UUID) -> None:
    """Remove a version's built image and unpacked files."""
    await ctx.docker.remove_image(built_image_tag(deployment_id, version_id))
    await delete_version_files(ctx, deployment_id, version_id)


async def images_of(ctx: WorkloadContext, deployment_id: UUID) -> list[str]:
    """Return the images built for a deployment."""
    images = await ctx.docker.managed_images()
    return [ref for ref, labels in images if labels.get(LABEL_DEPLOYMENT) == str(deployment_id)]


async def sweep_orphans(ctx: WorkloadContext, *, busy: set[UUID]) -> None:
    """Remove managed containers, images and networks of deployments the device no longer has.

    Deployments in `busy` have a pass in flight, which owns what they have in Docker.
    """
    known = {r.deployment_id for r in ctx.store.all() if not r.is_tombstone} | busy
    for container in await ctx.docker.list_managed():
        if container.deployment_id not in known:
            log.info("removing orphan container %s", container.name)
            await ctx.docker.remove(container.id, ctx.settings.stop_timeout_s)
    for reference, labels in await ctx.docker.managed_images():
        if label_uuid(labels.get(LABEL_DEPLOYMENT)) not in known:
            await ctx.docker.remove_image(reference)
    # Networks left by a crash between a container's removal and its network's.
    for name, labels in await ctx.docker.managed_networks():
        if label_uuid(labels.get(LABEL_DEPLOYMENT)) not in known:
            log.info("removing orphan network %s", name)
            await ctx.docker.remove_network(name)
