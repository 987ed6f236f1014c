"""Checks on an artifact: where it comes from, its SHA-256, the free disk it needs."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import shutil
import zipfile
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from modelyard_agent.errors import PermanentError

#: What this module's messages call a MB (and `MODELYARD_AGENT_DISK_MARGIN_MB` counts in).
MB = 2**20


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


async def check_free_disk(
    *,
    number: int,
    data_dir: Path,
    docker_root: Path | None,
    download_bytes: int,
    unpacked_bytes: int,
    builds_image: bool,
    margin_bytes: int,
) -> None:
    """Raise `PermanentError` unless what a version still needs fits, leaving the margin free.

    The data dir takes the rest of the zip and its unpacked copy (side by side until the zip is
    deleted); Docker's data root, when the agent can see it, takes about the unpacked size again
    for a Dockerfile build. Two paths on one file system add up.
    """

    def shortfalls() -> list[str]:
        demands: dict[int, tuple[Path, int]] = {}

        def demand(path: Path, needed: int) -> None:
            device = path.stat().st_dev
            where, held = demands.get(device, (path, margin_bytes))
            demands[device] = (where, held + needed)

        demand(data_dir, download_bytes + unpacked_bytes)
        if docker_root is not None:
            with contextlib.suppress(OSError):  # not visible from here (agent in a container)
                demand(docker_root, unpacked_bytes if builds_image else 0)
        found = []
        for where, needed in demands.values():
            free = shutil.disk_usage(where).free
            if free < needed:
                found.append(f"needs {math.ceil(needed / MB)} MB, {free // MB} MB free in {where}")
        return found

    found = await asyncio.to_thread(shortfalls)
    if found:
        raise PermanentError(
            f"Not enough free disk for version {number}: {'; '.join(found)} (download "
            f"{math.ceil(download_bytes / MB)} MB, unpacked about {math.ceil(unpacked_bytes / MB)}"
            f" MB, margin {margin_bytes // MB} MB)."
        )


def unpacked_size(zip_path: Path) -> int | None:
    """Return the total size a zip's members claim (its central directory), None if unreadable.

    A member that claims less than it holds is stopped by the extraction limits.
    """
    try:
        with zipfile.ZipFile(zip_path) as archive:
            return sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def size_or_zero(path: Path) -> int:
    """Return the size of a file, 0 if it is not there."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def sha256_or_none(path: Path) -> str | None:
    """Return the hex SHA-256 of a file, None if it is not there."""
    try:
        return sha256(path)
    except FileNotFoundError:
        return None


def sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
