"""What an artifact store is: staged writes made visible at once, reads, deletes, sweeps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from modelyard_deployer.artifacts.writing import Chunk

READ_CHUNK = 1024 * 1024


class StagedArtifact(Protocol):
    """An artifact being written: hashed and counted as it goes, invisible until committed."""

    @property
    def key(self) -> str:
        """Return the key the artifact will be visible under once committed."""
        ...

    @property
    def size(self) -> int:
        """Return the number of bytes written so far."""
        ...

    @property
    def path(self) -> Path:
        """Return a local file holding the bytes (read it only after `flush`)."""
        ...

    async def write(self, chunk: Chunk) -> None:
        """Append bytes (kept, not copied: they must not change afterwards).

        Returns before they are on disk: they are hashed and written while the next ones
        arrive; waits only while a bounded amount is still queued.
        """
        ...

    async def flush(self) -> None:
        """Make every written byte durable and readable at `path`."""
        ...

    def sha256(self) -> str:
        """Return the hex SHA-256 of the bytes written."""
        ...

    async def commit(self) -> None:
        """Make the artifact visible under its key, all at once."""
        ...

    async def discard(self) -> None:
        """Remove the staged bytes; nothing is left behind."""
        ...


class ArtifactStore(Protocol):
    """Stores version zips by key: a local (possibly shared) directory or an S3 bucket."""

    async def stage(self, key: str) -> StagedArtifact:
        """Return a new staged artifact to write an upload into, to be committed as `key`."""
        ...

    async def size(self, key: str) -> int:
        """Return the size in bytes of a stored artifact (FileNotFoundError if absent)."""
        ...

    def read(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        """Yield `length` bytes of an artifact from offset `start`."""
        ...

    async def delete(self, key: str) -> None:
        """Remove an artifact; a missing one is not an error."""
        ...

    async def sweep(self, older_than: timedelta) -> int:
        """Remove staged leftovers untouched for `older_than`; return how many went."""
        ...

    async def close(self) -> None:
        """Release the store's connections."""
        ...
