"""The local artifact store: files under one (possibly shared) directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from modelyard_deployer.artifacts.store import READ_CHUNK
from modelyard_deployer.artifacts.writing import WRITEBACK_BYTES, Chunk, HashingFileWriter


def _sweep_dir(staging: Path, older_than: timedelta) -> int:
    """Remove files of `staging` last modified longer than `older_than` ago (blocking)."""
    if not staging.is_dir():
        return 0
    cutoff = time.time() - older_than.total_seconds()
    removed = 0
    for entry in staging.iterdir():
        with contextlib.suppress(FileNotFoundError):
            # An upload in progress keeps touching its file; only abandoned ones are old.
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                entry.unlink()
                removed += 1
    return removed


class LocalStagedArtifact:
    """A temporary file under the store's `.staging` directory, written by a worker thread.

    Create it with `open` (in the event loop: the worker reports back to it).
    """

    def __init__(
        self, root: Path, staging: Path, key: str, fd: int, *, durable: bool = True
    ) -> None:
        self._root = root
        self._path = staging
        self._key = key
        self._fd: int | None = fd
        self._durable = durable
        # A copy that is not kept (the S3 store's spool) needs neither write-back nor fsync.
        self._writer = HashingFileWriter(fd, writeback_bytes=WRITEBACK_BYTES if durable else 0)
        self._size = 0
        self._flushed = False

    @classmethod
    async def open(
        cls, root: Path, staging: Path, key: str, *, durable: bool = True
    ) -> LocalStagedArtifact:
        """Return a new staged artifact writing to a new file at `staging`."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = await asyncio.to_thread(os.open, staging, flags, 0o644)
        return cls(root, staging, key, fd, durable=durable)

    @property
    def key(self) -> str:
        return self._key

    @property
    def size(self) -> int:
        return self._size

    @property
    def path(self) -> Path:
        return self._path

    async def write(self, chunk: Chunk) -> None:
        """Append `chunk`: hashed and written by the worker thread while the next one arrives.

        Returns once the chunk is queued; waits only while several MiB are still queued.
        """
        self._size += len(chunk)
        await self._writer.write(chunk)

    def sha256(self) -> str:
        """Return the hex SHA-256 of everything written (complete after `flush`)."""
        return self._writer.sha256()

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    async def flush(self) -> None:
        """Wait for every byte, fsync (a durable one: once, here), close it to be read back."""
        if self._flushed:
            return
        await self._writer.close(sync=self._durable)
        await asyncio.to_thread(self._close_fd)
        self._flushed = True

    def _commit(self) -> None:
        final = self._root / self._key
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path, final)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def commit(self) -> None:
        """Make the bytes visible under the key, atomically (rename on the same filesystem)."""
        await self.flush()
        await asyncio.to_thread(self._commit)

    def _discard(self) -> None:
        self._close_fd()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    async def discard(self) -> None:
        """Remove the staged bytes (after any write still in flight, whatever its outcome)."""
        await self._writer.abort()
        await asyncio.to_thread(self._discard)


class LocalArtifactStore:
    """Artifacts as files under one directory: `<root>/<key>`, staging in `<root>/.staging`.

    Safe for several replicas on one shared volume (NFS, a ReadWriteMany claim): staging is on
    the same filesystem as the artifacts, so a commit is an atomic rename and a reader sees a
    whole zip or none; each upload stages under a fresh name, so replicas never share a file.
    """

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root.resolve()
        self.staging = self.root / ".staging"
        self.durable = durable

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"artifact key {key!r} escapes the store")
        return path

    async def stage(self, key: str) -> LocalStagedArtifact:
        """Return a new staged artifact, committed later under `key`."""
        self._path(key)
        await asyncio.to_thread(self.staging.mkdir, parents=True, exist_ok=True)
        staging = self.staging / f"{uuid.uuid4().hex}.part"
        return await LocalStagedArtifact.open(self.root, staging, key, durable=self.durable)

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

    async def sweep(self, older_than: timedelta) -> int:
        """Remove staging files a crashed upload left, once untouched for `older_than`."""
        return await asyncio.to_thread(_sweep_dir, self.staging, older_than)

    async def close(self) -> None:
        """Nothing to release."""
