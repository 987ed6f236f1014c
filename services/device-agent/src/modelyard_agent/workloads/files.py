"""A version's files on the device: downloaded, verified and unpacked once; pruned after."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
from pathlib import Path
from uuid import UUID

from modelyard_agent.artifacts.download import (
    DownloadPolicy,
    artifact_size,
    download_artifact,
    partial_path,
)
from modelyard_agent.artifacts.unpack import unpack_artifact
from modelyard_agent.artifacts.verify import (
    MB,
    check_free_disk,
    same_origin,
    size_or_zero,
    unpacked_size,
)
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
        retry_delay_s=settings.download_retry_s,
        retry_delay_max_s=settings.download_retry_max_s,
    )
    size = await artifact_size(ctx.http, target, policy)
    if size is not None:
        # Refuse before the first byte when the version cannot fit; the zip's own listing is
        # checked again once it is here.
        already = await asyncio.to_thread(size_or_zero, partial_path(zip_path))
        await _check_disk(
            ctx,
            target,
            download_bytes=max(size - already, 0),
            unpacked_bytes=math.ceil(size * settings.disk_unpack_factor),
        )

    async def verifying() -> None:
        await ctx.reporter.report(record, DeploymentState.verifying, version=target)

    await download_artifact(ctx.http, target, zip_path, policy, on_verify=verifying)
    unpacked = await asyncio.to_thread(unpacked_size, zip_path)
    if unpacked is not None:
        try:
            await _check_disk(ctx, target, download_bytes=0, unpacked_bytes=unpacked)
        except PermanentError:
            await asyncio.to_thread(zip_path.unlink, missing_ok=True)
            raise
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


async def _check_disk(
    ctx: WorkloadContext, target: VersionSpec, *, download_bytes: int, unpacked_bytes: int
) -> None:
    """Raise `PermanentError` when the data dir (or Docker's data root) is too full."""
    docker_root: Path | None = None
    with contextlib.suppress(Exception):  # Docker unreachable: its own errors come later
        facts = await ctx.docker.engine_facts()
        if facts.get("docker_root_dir"):
            docker_root = Path(facts["docker_root_dir"])
    await check_free_disk(
        number=target.number,
        data_dir=ctx.settings.data_dir,
        docker_root=docker_root,
        download_bytes=download_bytes,
        unpacked_bytes=unpacked_bytes,
        builds_image=target.manifest.dockerfile,
        margin_bytes=ctx.settings.disk_margin_mb * MB,
    )


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
