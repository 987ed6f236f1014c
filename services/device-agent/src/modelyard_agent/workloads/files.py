"""A version's files on the device: downloaded, verified and unpacked once; pruned after."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from uuid import UUID

from modelyard_agent.artifacts.download import DownloadPolicy, download_artifact
from modelyard_agent.artifacts.unpack import unpack_artifact
from modelyard_agent.artifacts.verify import same_origin
from modelyard_agent.errors import PermanentError
from modelyard_agent.store import DeploymentRecord
from modelyard_agent.workloads.context import WorkloadContext
from modelyard_common.archive import ArchiveLimits, UnsafeArchiveError
from modelyard_common.contracts import DeploymentState, VersionSpec


async def prepare_files(
    ctx: WorkloadContext, record: DeploymentRecord, target: VersionSpec
) -> Path:
    """Return the unpacked project of `target`, downloading and verifying it first if needed."""
    project_dir = ctx.project_dir(record.deployment_id, target.id)
    if await asyncio.to_thread(project_dir.is_dir):
        return project_dir
    settings = ctx.settings
    await ctx.reporter.report(record, DeploymentState.downloading, version=target)
    if not same_origin(target.artifact_url, settings.deployer_url):
        # The device token goes to the deployer only: a command naming another place is
        # refused before any request is made.
        raise PermanentError(
            f"Refused to download version {target.number} from {target.artifact_url!r}: "
            f"artifacts come only from the configured deployer ({settings.deployer_url})."
        )
    zip_path = ctx.downloads_dir / f"{record.deployment_id}-{target.id}.zip"
    policy = DownloadPolicy(
        token=settings.token,
        attempts=settings.download_attempts,
        timeout_s=settings.download_timeout_s,
        disk_reserve_bytes=settings.disk_reserve_mb * 1024 * 1024,
    )

    async def verifying() -> None:
        await ctx.reporter.report(record, DeploymentState.verifying, version=target)

    await download_artifact(ctx.http, target, zip_path, policy, on_verify=verifying)
    limits = ArchiveLimits(
        max_total_bytes=settings.max_extracted_mb * 1024 * 1024,
        max_member_bytes=settings.max_extracted_mb * 1024 * 1024,
        max_ratio=settings.max_compression_ratio,
    )
    try:
        await unpack_artifact(zip_path, project_dir, limits)
    except UnsafeArchiveError as exc:
        raise PermanentError(f"The artifact was refused: {exc}") from exc
    finally:
        await asyncio.to_thread(zip_path.unlink, missing_ok=True)
    # The container's unprivileged user reads the (read-only) project whatever the agent's
    # umask was; nothing in it is secret from the model it belongs to.
    await asyncio.to_thread(_readable_by_all, project_dir)
    return project_dir


async def delete_files(ctx: WorkloadContext, deployment_id: UUID) -> None:
    """Delete every unpacked version and every download of a deployment."""

    def delete() -> None:
        shutil.rmtree(ctx.project_dir(deployment_id), ignore_errors=True)
        for path in ctx.downloads_dir.glob(f"{deployment_id}-*"):
            path.unlink(missing_ok=True)

    await asyncio.to_thread(delete)


async def delete_version_files(ctx: WorkloadContext, deployment_id: UUID, version_id: UUID) -> None:
    """Delete one unpacked version of a deployment."""
    await asyncio.to_thread(
        shutil.rmtree, ctx.project_dir(deployment_id, version_id), ignore_errors=True
    )


async def prune_files(ctx: WorkloadContext, deployment_id: UUID, *, keep: UUID) -> None:
    """Delete unpacked versions of a deployment other than `keep` (e.g. a cancelled one)."""

    def prune() -> None:
        directory = ctx.project_dir(deployment_id)
        for path in directory.iterdir() if directory.is_dir() else []:
            if path.name != str(keep):
                shutil.rmtree(path, ignore_errors=True)

    await asyncio.to_thread(prune)


def _readable_by_all(directory: Path) -> None:
    """Give everyone read access to a tree (and search access to its directories)."""
    for root, dirs, files in os.walk(directory):
        os.chmod(root, os.stat(root).st_mode | 0o555)
        for name in files:
            path = os.path.join(root, name)
            os.chmod(path, os.stat(path).st_mode | 0o444)
        del dirs
