"""When a new version fails for good: report it, and keep (or restore) the previous version."""

from __future__ import annotations

from modelyard_agent.containers.specs import ManagedContainer
from modelyard_agent.errors import PermanentError
from modelyard_agent.store import DeploymentRecord
from modelyard_agent.workloads.cleanup import forget_version, retire
from modelyard_agent.workloads.context import WorkloadContext
from modelyard_agent.workloads.serving import is_routed, serve, wait_healthy
from modelyard_common.contracts import DeploymentState, VersionSpec


async def fail(
    ctx: WorkloadContext,
    record: DeploymentRecord,
    target: VersionSpec,
    error: PermanentError,
    others: list[ManagedContainer],
    *,
    new_container: ManagedContainer | None,
) -> None:
    """Report a permanent failure; keep or restore the previous version if there is one."""
    command = record.command
    if new_container is not None:
        tail = error.log_tail or await ctx.docker.logs(
            new_container.id, ctx.settings.log_tail_lines
        )
        error = PermanentError(str(error), tail)
        await ctx.docker.remove(new_container.id, 0)
        await forget_version(ctx, record.deployment_id, target.id)
    record.failed_generation = command.generation
    record.applied_generation = command.generation
    await ctx.reporter.report(
        record,
        DeploymentState.failed,
        message=str(error),
        log_tail=error.log_tail,
        version=target,
    )
    if await keep_previous(ctx, record, others):
        previous = record.active_version
        number = previous.number if previous is not None else "?"
        await ctx.reporter.report(
            record,
            DeploymentState.rolled_back,
            message=f"Version {target.number} failed; version {number} keeps serving.",
            version=previous,
        )
    else:
        ctx.routes.withdraw(record.deployment_id)
        record.host_port = None
        await ctx.store.save(record)


async def keep_previous(
    ctx: WorkloadContext, record: DeploymentRecord, others: list[ManagedContainer]
) -> bool:
    """Make sure the previous version's container serves; return whether there is one."""
    previous_spec = _previous_spec(record, others)
    candidates = [c for c in others if previous_spec and c.version_id == previous_spec.id]
    for stray in (c for c in others if c not in candidates):
        await retire(ctx, record.deployment_id, stray)
    if previous_spec is None or not candidates:
        return False
    previous = candidates[0]
    if not previous.running:
        await ctx.docker.start(previous.id)
        previous = await wait_healthy(ctx, previous, previous_spec)
    elif not is_routed(ctx, previous_spec, previous):
        previous = await wait_healthy(ctx, previous, previous_spec)
    if previous.host_port is None:
        return False
    host_port = serve(ctx, record, previous_spec, previous)
    if record.host_port != host_port or record.active_version != previous_spec:
        record.active_version = previous_spec
        record.host_port = host_port
        await ctx.store.save(record)
    return True


def _previous_spec(record: DeploymentRecord, others: list[ManagedContainer]) -> VersionSpec | None:
    ids = {c.version_id for c in others}
    for spec in (record.active_version, record.command.previous_version):
        if spec is not None and spec.id in ids and spec.id != record.command.version.id:
            return spec
    return None
