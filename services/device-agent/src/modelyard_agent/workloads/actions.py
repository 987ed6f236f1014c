"""One reconciliation pass of one deployment: run it, stop it or remove it, as desired."""

from __future__ import annotations

import asyncio
import logging

from modelyard_agent.containers.specs import ManagedContainer
from modelyard_agent.errors import PermanentError, TransientError
from modelyard_agent.store import DeploymentRecord
from modelyard_agent.workloads.cleanup import images_of, retire
from modelyard_agent.workloads.context import WorkloadContext
from modelyard_agent.workloads.files import delete_files, prune_files
from modelyard_agent.workloads.launch import deploy
from modelyard_agent.workloads.naming import network_name
from modelyard_agent.workloads.rollback import fail, keep_previous
from modelyard_agent.workloads.serving import is_routed, serve, wait_healthy
from modelyard_common.contracts import CommandAction, DeploymentState, DesiredState

log = logging.getLogger("modelyard.agent.reconciler")


async def reconcile(ctx: WorkloadContext, record: DeploymentRecord) -> None:
    """Make one deployment's actual state match its desired state (one idempotent pass)."""
    command = record.command
    containers = await ctx.docker.list_managed(command.deployment_id)
    if command.desired_state is DesiredState.removed:
        await remove(ctx, record, containers)
    elif command.desired_state is DesiredState.stopped:
        await stop(ctx, record, containers)
    else:
        await run(ctx, record, containers)


async def remove(
    ctx: WorkloadContext, record: DeploymentRecord, containers: list[ManagedContainer]
) -> None:
    """Remove every container, network, image and file of the deployment; report `removed`."""
    deployment_id = record.deployment_id
    leftovers = (
        bool(containers)
        or await asyncio.to_thread(ctx.project_dir(deployment_id).exists)
        or bool(await images_of(ctx, deployment_id))
    )
    if record.state is DeploymentState.removed and not leftovers:
        return
    if record.state is not DeploymentState.removing:
        await ctx.reporter.report(record, DeploymentState.removing)
    ctx.routes.withdraw(deployment_id)
    for container in containers:
        await ctx.routes.drain(container.id, ctx.settings.drain_timeout_s)
        await ctx.docker.remove(container.id, ctx.settings.stop_timeout_s)
    await ctx.docker.remove_networks(deployment_id)
    for image in await images_of(ctx, deployment_id):
        await ctx.docker.remove_image(image)
    await delete_files(ctx, deployment_id)
    record.active_version = None
    record.host_port = None
    record.applied_generation = record.command.generation
    await ctx.reporter.report(record, DeploymentState.removed)


async def stop(
    ctx: WorkloadContext, record: DeploymentRecord, containers: list[ManagedContainer]
) -> None:
    """Stop the desired version's container (keeping it), retire others; report `stopped`."""
    target = record.command.version
    ctx.routes.withdraw(record.deployment_id)
    for container in containers:
        if container.version_id != target.id:
            await retire(ctx, record.deployment_id, container)
        elif container.running or container.status == "restarting":
            await ctx.routes.drain(container.id, ctx.settings.drain_timeout_s)
            await ctx.docker.stop(container.id, ctx.settings.stop_timeout_s)
    record.applied_generation = record.command.generation
    if record.state is not DeploymentState.stopped:
        record.host_port = None
        await ctx.reporter.report(record, DeploymentState.stopped)


async def run(
    ctx: WorkloadContext, record: DeploymentRecord, containers: list[ManagedContainer]
) -> None:
    """Serve the desired version: deploy, start, restart or adopt it; then retire the others."""
    command = record.command
    target = command.version
    settings = ctx.settings
    mine = [c for c in containers if c.version_id == target.id]
    others = [c for c in containers if c.version_id != target.id]
    mine.sort(key=lambda c: not c.running)
    for duplicate in mine[1:]:
        await ctx.docker.remove(duplicate.id, settings.stop_timeout_s)
    current = mine[0] if mine else None
    if current is not None and current.network != network_name(command.deployment_id):
        # Made before containers were fenced (on the default bridge, as root): replace it.
        log.info("replacing unfenced container %s", current.name)
        ctx.routes.withdraw(command.deployment_id)
        await ctx.routes.drain(current.id, settings.drain_timeout_s)
        await ctx.docker.remove(current.id, settings.stop_timeout_s)
        current = None

    if record.failed_generation == command.generation:
        # This generation failed for good; only keep the previous version serving.
        await keep_previous(ctx, record, others)
        return

    restart_due = (
        command.action is CommandAction.restart and record.applied_generation < command.generation
    )
    try:
        if current is None:
            current = await deploy(ctx, record, target)
        elif not current.running:
            await ctx.reporter.report(record, DeploymentState.starting, version=target)
            await ctx.docker.start(current.id)
            current = await wait_healthy(ctx, current, target)
        elif restart_due:
            await ctx.reporter.report(record, DeploymentState.starting, version=target)
            await ctx.docker.restart(current.id, settings.stop_timeout_s)
            current = await wait_healthy(ctx, current, target)
        elif not is_routed(ctx, target, current):
            # Running but not routed: adopted after an agent restart, or mid-update.
            current = await wait_healthy(ctx, current, target)
    except PermanentError as exc:
        served_before = record.active_version is not None and record.active_version.id == target.id
        if served_before:
            # This version ran fine here before (it crashed, or was stopped): not a bad
            # version, so keep its container and retry with backoff instead of failing it.
            raise TransientError(str(exc)) from exc
        await fail(ctx, record, target, exc, others, new_container=current)
        return

    host_port = serve(ctx, record, target, current)
    changed = (
        record.state is not DeploymentState.running
        or record.host_port != host_port
        or record.active_version is None
        or record.active_version.id != target.id
    )
    record.active_version = target
    record.host_port = host_port
    record.applied_generation = command.generation
    if changed:
        await ctx.reporter.report(record, DeploymentState.running, version=target)
    for old in others:
        await retire(ctx, record.deployment_id, old)
    await prune_files(ctx, record.deployment_id, keep=target.id)
