"""Fetch a model version's zip from the deployer, verify it and unpack it safely.

Downloads go to `<data_dir>/downloads/<version>.part` and resume with an HTTP Range request after
a dropped connection or an agent restart. The SHA-256 recorded at upload is checked before the
zip is opened, and extraction goes through `modelyard_common.archive`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import httpx

from modelyard_common.archive import ArchiveLimits, ArchiveSummary, extract_archive
from modelyard_common.contracts import VersionSpec

log = logging.getLogger("modelyard.agent.artifacts")

_CHUNK = 256 * 1024


class PermanentError(Exception):
    """A failure that retrying the same command cannot fix (bad zip, wrong checksum, ...).

    `log_tail` carries lines worth showing next to the message (build output, container logs).
    """

    def __init__(self, message: str, log_tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.log_tail = log_tail or []


def same_origin(url: str, trusted: str) -> bool:
    """Return whether `url` has the scheme, host and port of `trusted` (RFC 6454 origin)."""
    a, b = urlsplit(url), urlsplit(trusted)

    def port(parts: SplitResult) -> int | None:
        try:
            return parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
        except ValueError:
            return None

    return (
        a.scheme.lower() in ("http", "https")
        and a.scheme.lower() == b.scheme.lower()
        and (a.hostname or "") == (b.hostname or "")
        and port(a) == port(b)
        and a.username is None
        and port(a) is not None
    )


class TransientError(Exception):
    """A failure worth retrying later (network, full disk, Docker hiccup)."""


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
    if await asyncio.to_thread(_sha256_or_none, destination) == version.sha256.lower():
        return destination
    partial = destination.with_name(destination.name + ".part")
    destination.parent.mkdir(parents=True, exist_ok=True)
    await _check_free_disk(destination.parent, version.size_bytes, partial, policy)
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
        if await asyncio.to_thread(_sha256, partial) == version.sha256.lower():
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
    offset = await asyncio.to_thread(_size_or_zero, partial)
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


async def _check_free_disk(
    directory: Path, size: int, partial: Path, policy: DownloadPolicy
) -> None:
    already = await asyncio.to_thread(_size_or_zero, partial)
    # The zip and its extracted copy live side by side until the zip is deleted.
    needed = 2 * size - already + policy.disk_reserve_bytes
    free = (await asyncio.to_thread(shutil.disk_usage, directory)).free
    if free < needed:
        raise TransientError(
            f"Not enough free disk: {needed // 2**20} MiB needed, {free // 2**20} MiB free."
        )


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _sha256_or_none(path: Path) -> str | None:
    try:
        return _sha256(path)
    except FileNotFoundError:
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


async def unpack_artifact(zip_path: Path, target: Path, limits: ArchiveLimits) -> ArchiveSummary:
    """Extract a verified zip into `target` (all or nothing); an existing target is reused."""

    def unpack() -> ArchiveSummary:
        if target.is_dir():
            return ArchiveSummary()
        return extract_archive(zip_path, target, limits)

    return await asyncio.to_thread(unpack)
