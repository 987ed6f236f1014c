"""Fetch a model version's zip from the deployer, resuming, and check its SHA-256.

Bytes land in `<destination>.part` (under `<data_dir>/downloads/`). A dropped connection, a
timeout or an agent restart leaves the part in place; the next attempt asks for the rest only
(`Range: bytes=<size of the part>-`) and appends it, but only when the answer is a 206 whose
`Content-Range` starts exactly there and names the recorded size: any other answer starts over
from zero. Attempts that bring no new bytes are bounded (`attempts` in a row), with a delay that
doubles up to a cap; an attempt that made progress resets the count. Once every byte is in, the
SHA-256 of the whole file is checked: a mismatch deletes the part and fails the version, so a
corrupt part is never resumed again. A disk that fills up mid-download gets its space back (the
part is deleted) before the error is raised, so the rest of the device keeps working.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from modelyard_agent.artifacts.verify import sha256, sha256_or_none, size_or_zero
from modelyard_agent.errors import PermanentError, TransientError
from modelyard_common.contracts import VersionSpec

log = logging.getLogger("modelyard.agent.artifacts")

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True, slots=True)
class DownloadPolicy:
    """How hard and how patiently to fetch an artifact."""

    token: str
    attempts: int = 5  # in a row without a new byte
    timeout_s: float = 60.0
    retry_delay_s: float = 0.5
    retry_delay_max_s: float = 30.0


def partial_path(destination: Path) -> Path:
    """Return where the bytes of `destination` are gathered until they are verified."""
    return destination.with_name(destination.name + ".part")


async def artifact_size(
    client: httpx.AsyncClient, version: VersionSpec, policy: DownloadPolicy
) -> int | None:
    """Return the zip's size: the one recorded at upload, else the deployer's HEAD answer."""
    if version.size_bytes > 0:
        return version.size_bytes
    try:
        response = await client.head(
            version.artifact_url,
            headers={"Authorization": f"Bearer {policy.token}"},
            timeout=policy.timeout_s,
        )
        return int(response.headers["content-length"]) if response.is_success else None
    except (httpx.HTTPError, KeyError, ValueError):
        return None


async def download_artifact(
    client: httpx.AsyncClient,
    version: VersionSpec,
    destination: Path,
    policy: DownloadPolicy,
    *,
    on_verify: Callable[[], Awaitable[None]] | None = None,
) -> Path:
    """Download a version's zip to `destination` (resuming a partial file) and return it.

    `on_verify` is awaited once the bytes are in, before the checksum is computed. Free disk
    is the caller's to check first (see `verify.check_free_disk`).

    Raises `TransientError` when the network keeps failing or the disk fills up, and
    `PermanentError` when the deployer refuses the request or the checksum does not match.
    """
    expected = version.sha256.lower()
    if await asyncio.to_thread(sha256_or_none, destination) == expected:
        return destination
    partial = partial_path(destination)
    await asyncio.to_thread(destination.parent.mkdir, parents=True, exist_ok=True)
    resumed_from = await asyncio.to_thread(size_or_zero, partial)
    fruitless = 0
    while True:
        before = await asyncio.to_thread(size_or_zero, partial)
        try:
            await _fetch(client, version, partial, policy)
            break
        except (httpx.TransportError, _RetryableAnswer) as exc:
            after = await asyncio.to_thread(size_or_zero, partial)
            fruitless = 0 if after > before else fruitless + 1
            if fruitless >= policy.attempts:
                raise TransientError(
                    f"Download of version {version.number} failed {fruitless} times in a row "
                    f"without progress: {_describe(exc)}"
                ) from exc
            delay = min(policy.retry_delay_s * 2 ** max(fruitless - 1, 0), policy.retry_delay_max_s)
            log.info(
                "download of version %s stopped at byte %d (%s); resuming in %.1fs",
                version.id,
                after,
                _describe(exc),
                delay,
            )
            resumed_from = resumed_from or after
            await asyncio.sleep(delay)
    if on_verify is not None:
        await on_verify()
    actual = await asyncio.to_thread(sha256, partial)
    if actual != expected:
        # Never resume from these bytes again: the next command starts from zero.
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        resumed = f" (resumed at byte {resumed_from})" if resumed_from else ""
        raise PermanentError(
            f"The artifact of version {version.number} does not match its SHA-256{resumed}: "
            f"expected {expected}, got {actual}. The download was deleted."
        )
    await asyncio.to_thread(partial.replace, destination)
    return destination


class _RetryableAnswer(Exception):
    """An answer worth another attempt (5xx, 429, a resume the server did not honour)."""


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _resumes_at(response: httpx.Response, offset: int, size: int) -> bool:
    """Return whether a 206 answer carries exactly the bytes from `offset` to the end."""
    match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    if match is None:
        return False
    start, end, total = match.groups()
    if int(start) != offset:
        return False
    return size <= 0 or (int(end) == size - 1 and total == str(size))


async def _fetch(
    client: httpx.AsyncClient, version: VersionSpec, partial: Path, policy: DownloadPolicy
) -> None:
    """Bring `partial` up to the whole artifact with one request (appending when resuming)."""
    size = version.size_bytes
    offset = await asyncio.to_thread(size_or_zero, partial)
    if size > 0 and offset > size:
        await asyncio.to_thread(partial.unlink)
        offset = 0
    if size > 0 and offset == size:
        return  # every byte is in already (the agent stopped before verifying)
    headers = {"Authorization": f"Bearer {policy.token}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    timeout = httpx.Timeout(policy.timeout_s, connect=min(10.0, policy.timeout_s))
    async with client.stream(
        "GET", version.artifact_url, headers=headers, timeout=timeout
    ) as response:
        status = response.status_code
        if status == 416:
            # Our part is bogus for this artifact: start over.
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            raise _RetryableAnswer("range not satisfiable; starting over")
        if status in (408, 425, 429) or status >= 500:
            raise _RetryableAnswer(f"the deployer answered {status}")
        if status not in (200, 206):
            raise PermanentError(
                f"The deployer refused the artifact download of version {version.number} "
                f"(HTTP {status})."
            )
        if status == 206 and not (offset and _resumes_at(response, offset, size)):
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            raise _RetryableAnswer(
                f"asked for bytes from {offset}, the deployer sent "
                f"{response.headers.get('content-range')!r}; starting over"
            )
        if status == 200 and offset:
            log.info("the deployer sent the whole artifact again; starting over from zero")
        mode = "ab" if status == 206 else "wb"
        written = offset if status == 206 else 0
        await _write_body(response, partial, mode, written, version)


async def _write_body(
    response: httpx.Response, partial: Path, mode: str, written: int, version: VersionSpec
) -> None:
    size = version.size_bytes
    handle = await asyncio.to_thread(open, partial, mode)
    try:
        try:
            # Unbuffered: every byte that arrived is kept when the connection drops.
            async for chunk in response.aiter_bytes():
                written += len(chunk)
                if size > 0 and written > size:
                    raise PermanentError(
                        f"The artifact of version {version.number} is larger than the "
                        f"{size} bytes recorded at upload."
                    )
                await asyncio.to_thread(handle.write, chunk)
        finally:
            # Closing flushes, so it too may find the disk full.
            await asyncio.to_thread(handle.close)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        # Give the space back at once: the store, the outbox and other deployments need it.
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        raise TransientError(
            f"The disk filled up while downloading version {version.number} "
            f"({written // 2**20} of {size // 2**20} MB in); the partial download was deleted."
        ) from exc
    if size > 0 and written < size:
        raise _RetryableAnswer(f"the answer ended at byte {written} of {size}")
