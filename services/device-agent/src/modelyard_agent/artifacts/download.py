"""Fetch a model version's zip from the deployer, resuming, and check its SHA-256.

Downloads go to `<data_dir>/downloads/<version>.part` and resume with an HTTP Range request after
a dropped connection or an agent restart. The SHA-256 recorded at upload is checked before the
zip is opened (see `unpack`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from modelyard_agent.artifacts.verify import check_free_disk, sha256, sha256_or_none, size_or_zero
from modelyard_agent.errors import PermanentError, TransientError
from modelyard_common.contracts import VersionSpec

log = logging.getLogger("modelyard.agent.artifacts")

_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class DownloadPolicy:
    """How hard and how patiently to fetch an artifact."""

    token: str
    attempts: int = 5
    timeout_s: float = 60.0
    disk_reserve_bytes: int = 256 * 1024 * 1024
    retry_delay_s: float = 0.5


async def download_artifact(
    client: httpx.AsyncClient,
    version: VersionSpec,
    destination: Path,
    policy: DownloadPolicy,
    *,
    on_verify: Callable[[], Awaitable[None]] | None = None,
) -> Path:
    """Download a version's zip to `destination` (resuming a partial file) and return it.

    `on_verify` is awaited once the bytes are in, before the checksum is computed.

    Raises `TransientError` when the disk is too full or the network keeps failing, and
    `PermanentError` when the deployer refuses the request or the checksum does not match.
    """
    if await asyncio.to_thread(sha256_or_none, destination) == version.sha256.lower():
        return destination
    partial = destination.with_name(destination.name + ".part")
    destination.parent.mkdir(parents=True, exist_ok=True)
    await check_free_disk(
        destination.parent, version.size_bytes, partial, policy.disk_reserve_bytes
    )
    digest_mismatches = 0
    attempt = 0
    while True:
        attempt += 1
        try:
            await _fetch(client, version, partial, policy)
        except (httpx.TransportError, _RetryableStatusError) as exc:
            if attempt >= policy.attempts:
                raise TransientError(
                    f"Download of version {version.number} failed {attempt} times: {exc}"
                ) from exc
            log.info("download of %s interrupted (%s); resuming", version.id, exc)
            await asyncio.sleep(policy.retry_delay_s * attempt)
            continue
        if on_verify is not None:
            await on_verify()
        if await asyncio.to_thread(sha256, partial) == version.sha256.lower():
            await asyncio.to_thread(partial.replace, destination)
            return destination
        # A corrupt resume is possible (the file changed under us); one fresh download settles
        # whether the artifact itself is wrong.
        digest_mismatches += 1
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        if digest_mismatches >= 2:
            raise PermanentError(
                f"The artifact of version {version.number} does not match its SHA-256 "
                f"({version.sha256})."
            )


class _RetryableStatusError(Exception):
    pass


async def _fetch(
    client: httpx.AsyncClient, version: VersionSpec, partial: Path, policy: DownloadPolicy
) -> None:
    offset = await asyncio.to_thread(size_or_zero, partial)
    if offset > version.size_bytes:
        await asyncio.to_thread(partial.unlink)
        offset = 0
    headers = {"Authorization": f"Bearer {policy.token}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    timeout = httpx.Timeout(policy.timeout_s, connect=min(10.0, policy.timeout_s))
    async with client.stream(
        "GET", version.artifact_url, headers=headers, timeout=timeout
    ) as response:
        if response.status_code == 416:
            # Our partial file is complete or bogus: start over.
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            raise _RetryableStatusError("range not satisfiable; restarting the download")
        if response.status_code in (408, 425, 429) or response.status_code >= 500:
            raise _RetryableStatusError(f"the deployer answered {response.status_code}")
        if response.status_code not in (200, 206):
            raise PermanentError(
                f"The deployer refused the artifact download of version {version.number} "
                f"(HTTP {response.status_code})."
            )
        mode = "ab" if response.status_code == 206 and offset else "wb"
        handle = await asyncio.to_thread(open, partial, mode)
        try:
            written = offset if mode == "ab" else 0
            async for chunk in response.aiter_bytes(_CHUNK):
                written += len(chunk)
                if written > version.size_bytes:
                    raise PermanentError(
                        f"The artifact of version {version.number} is larger than the "
                        f"{version.size_bytes} bytes recorded at upload."
                    )
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(handle.flush)
        finally:
            await asyncio.to_thread(handle.close)
