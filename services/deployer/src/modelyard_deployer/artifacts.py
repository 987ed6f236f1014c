"""Artifact store: where version zips live. A local directory by default, S3 could follow.

Writes are staged: bytes go to a temporary object that becomes visible under its final key only
on `commit`, and `discard` removes it, so a failed or rejected upload leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Protocol

READ_CHUNK = 1024 * 1024


class StagedArtifact(Protocol):
    """An artifact being written: hashed and counted as it goes, invisible until committed."""

    @property
    def size(self) -> int:
        """Return the number of bytes written so far."""
        ...

    @property
    def path(self) -> Path:
        """Return a local file holding the bytes (read it only after `flush`)."""
        ...

    async def write(self, chunk: bytes) -> None:
        """Append bytes."""
        ...

    async def flush(self) -> None:
        """Make every written byte durable and readable at `path`."""
        ...

    def sha256(self) -> str:
        """Return the hex SHA-256 of the bytes written."""
        ...

    async def commit(self, key: str) -> None:
        """Make the artifact visible under `key`, all at once."""
        ...

    async def discard(self) -> None:
        """Remove the staged bytes; nothing is left behind."""
        ...


class ArtifactStore(Protocol):
    """Stores version zips by key; a local directory today, an S3 bucket could follow."""

    async def stage(self) -> StagedArtifact:
        """Return a new staged artifact to write an upload into."""
        ...

    async def size(self, key: str) -> int:
        """Return the size in bytes of a stored artifact."""
        ...

    def read(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        """Yield `length` bytes of an artifact from offset `start`."""
        ...

    async def delete(self, key: str) -> None:
        """Remove an artifact; a missing one is not an error."""
        ...


class LocalStagedArtifact:
    """A temporary file under the store's `.staging` directory."""

    def __init__(self, root: Path, staging: Path) -> None:
        self._root = root
        self._path = staging
        self._file: IO[bytes] | None = open(staging, "xb")  # noqa: SIM115 - closed on commit/discard
        self._hash = hashlib.sha256()
        self._size = 0
        self._in_flight: asyncio.Future[None] | None = None

    @property
    def size(self) -> int:
        return self._size

    @property
    def path(self) -> Path:
        return self._path

    def _write(self, chunk: bytes) -> None:
        assert self._file is not None
        self._hash.update(chunk)
        self._file.write(chunk)

    async def write(self, chunk: bytes) -> None:
        """Append `chunk`, hashing it on the way, in a worker thread (both block).

        Returns once the previous chunk is written, not this one: the next chunk is received
        from the network while this one is hashed and written, and at most one is in flight.
        """
        await self._settle()
        self._size += len(chunk)
        self._in_flight = asyncio.get_running_loop().run_in_executor(None, self._write, chunk)

    async def _settle(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            await in_flight

    def sha256(self) -> str:
        """Return the hex SHA-256 of everything written."""
        return self._hash.hexdigest()

    def _close(self, *, sync: bool) -> None:
        if self._file is not None:
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    async def flush(self) -> None:
        """Close the file so it can be read back (validation) before commit."""
        await self._settle()
        await asyncio.to_thread(self._close, sync=True)

    def _commit(self, key: str) -> None:
        self._close(sync=True)
        final = self._root / key
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path, final)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def commit(self, key: str) -> None:
        """Make the bytes visible under `key`, atomically (rename on the same disk)."""
        await self._settle()
        await asyncio.to_thread(self._commit, key)

    def _discard(self) -> None:
        self._close(sync=False)
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    async def discard(self) -> None:
        """Remove the staged bytes (after any write still in flight, whatever its outcome)."""
        with contextlib.suppress(Exception):
            await self._settle()
        await asyncio.to_thread(self._discard)


class LocalArtifactStore:
    """Artifacts as files under one directory: `<root>/<key>`, staging in `<root>/.staging`."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.staging = self.root / ".staging"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"artifact key {key!r} escapes the store")
        return path

    async def stage(self) -> LocalStagedArtifact:
        """Return a new staged artifact."""
        await asyncio.to_thread(self.staging.mkdir, parents=True, exist_ok=True)
        staging = self.staging / f"{uuid.uuid4().hex}.part"
        return await asyncio.to_thread(LocalStagedArtifact, self.root, staging)

    async def size(self, key: str) -> int:
        """Return the size in bytes of a stored artifact."""
        stat = await asyncio.to_thread(os.stat, self._path(key))
        return stat.st_size

    async def read(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        """Yield `length` bytes of an artifact from offset `start`, a chunk at a time."""
        handle = await asyncio.to_thread(open, self._path(key), "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            remaining = length
            while remaining > 0:
                chunk = await asyncio.to_thread(handle.read, min(READ_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    def delete_now(self, key: str) -> None:
        """Remove an artifact (blocking; for post-commit hooks)."""
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    async def delete(self, key: str) -> None:
        """Remove an artifact; a missing one is not an error."""
        await asyncio.to_thread(self.delete_now, key)
