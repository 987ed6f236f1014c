"""Checks on an artifact before it is trusted: where it comes from, its SHA-256, the free disk."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from modelyard_agent.errors import TransientError


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


async def check_free_disk(directory: Path, size: int, partial: Path, reserve_bytes: int) -> None:
    """Raise `TransientError` unless the zip of `size` bytes and its unpacked copy fit."""
    already = await asyncio.to_thread(size_or_zero, partial)
    # The zip and its extracted copy live side by side until the zip is deleted.
    needed = 2 * size - already + reserve_bytes
    free = (await asyncio.to_thread(shutil.disk_usage, directory)).free
    if free < needed:
        raise TransientError(
            f"Not enough free disk: {needed // 2**20} MiB needed, {free // 2**20} MiB free."
        )


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
