"""Artifact store: where version zips live. A local directory by default, or an S3 bucket.

Writes are staged: bytes go to a temporary object that becomes visible under its final key only
on `commit`, and `discard` removes it, so a failed or rejected upload leaves nothing behind.
What a crashed replica leaves half-written (staging files, unfinished multipart uploads) is
removed by `sweep` once it is older than the staging age limit.

Every replica of the deployer must see the same artifacts: either each mounts the same volume
(the local store: staging lives under the same root, so `commit` is one atomic rename on one
filesystem) or all use the same bucket (the S3 store: an object appears only when its multipart
upload completes).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError

from modelyard_deployer.settings import DeployerSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

READ_CHUNK = 1024 * 1024
MiB = 1024 * 1024
# S3's floor for every part but the last.
MIN_PART_BYTES = 5 * MiB


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

    async def write(self, chunk: bytes) -> None:
        """Append bytes."""
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
    """A temporary file under the store's `.staging` directory."""

    def __init__(self, root: Path, staging: Path, key: str) -> None:
        self._root = root
        self._path = staging
        self._key = key
        self._file: IO[bytes] | None = open(staging, "xb")  # noqa: SIM115 - closed on commit/discard
        self._hash = hashlib.sha256()
        self._size = 0
        self._in_flight: asyncio.Future[None] | None = None

    @property
    def key(self) -> str:
        return self._key

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

    def _commit(self) -> None:
        self._close(sync=True)
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
        await self._settle()
        await asyncio.to_thread(self._commit)

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
    """Artifacts as files under one directory: `<root>/<key>`, staging in `<root>/.staging`.

    Safe for several replicas on one shared volume (NFS, a ReadWriteMany claim): staging is on
    the same filesystem as the artifacts, so a commit is an atomic rename and a reader sees a
    whole zip or none; each upload stages under a fresh name, so replicas never share a file.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.staging = self.root / ".staging"

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
        return await asyncio.to_thread(LocalStagedArtifact, self.root, staging, key)

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


def _missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


class S3StagedArtifact:
    """A multipart upload to the final key, fed part by part while the bytes arrive.

    Nothing is visible in the bucket until `commit` completes the upload; `discard` aborts it.
    A spool file on local disk keeps a copy for validation (the zip is read at random offsets
    before it is accepted), hashed on the way. Memory stays at two parts: the one filling and
    the one uploading.
    """

    def __init__(
        self,
        store: S3ArtifactStore,
        key: str,
        upload_id: str,
        spool: LocalStagedArtifact,
    ) -> None:
        self._store = store
        self._key = key
        self._upload_id = upload_id
        self._spool = spool
        self._buffer = bytearray()
        self._parts: list[CompletedPartTypeDef] = []
        self._sending: asyncio.Task[None] | None = None
        self._flushed = False

    @property
    def key(self) -> str:
        return self._key

    @property
    def size(self) -> int:
        return self._spool.size

    @property
    def path(self) -> Path:
        return self._spool.path

    def sha256(self) -> str:
        """Return the hex SHA-256 of everything written."""
        return self._spool.sha256()

    async def write(self, chunk: bytes) -> None:
        """Append `chunk`: to the spool (hashed), and to the bucket once a part is full."""
        await self._spool.write(chunk)
        self._buffer += chunk
        if len(self._buffer) >= self._store.part_bytes:
            await self._send_part()

    async def _send_part(self) -> None:
        data = bytes(self._buffer)
        self._buffer.clear()
        await self._settle()
        number = len(self._parts) + 1
        self._sending = asyncio.create_task(self._upload_part(number, data))

    async def _upload_part(self, number: int, data: bytes) -> None:
        client = await self._store.client()
        response = await client.upload_part(
            Bucket=self._store.bucket,
            Key=self._store.object_key(self._key),
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})

    async def _settle(self) -> None:
        if self._sending is not None:
            sending, self._sending = self._sending, None
            await sending

    async def flush(self) -> None:
        """Send the last part and close the spool so it can be read back."""
        if self._flushed:
            return
        await self._spool.flush()
        if self._buffer or not self._parts:
            await self._send_part()
        await self._settle()
        self._flushed = True

    async def commit(self) -> None:
        """Complete the multipart upload: the object appears under its key, whole."""
        await self.flush()
        client = await self._store.client()
        await client.complete_multipart_upload(
            Bucket=self._store.bucket,
            Key=self._store.object_key(self._key),
            UploadId=self._upload_id,
            MultipartUpload={"Parts": sorted(self._parts, key=lambda p: p["PartNumber"])},
        )
        await self._spool.discard()

    async def discard(self) -> None:
        """Abort the multipart upload (its parts are freed) and remove the spool."""
        with contextlib.suppress(Exception):
            await self._settle()
        try:
            client = await self._store.client()
            await client.abort_multipart_upload(
                Bucket=self._store.bucket,
                Key=self._store.object_key(self._key),
                UploadId=self._upload_id,
            )
        except ClientError as exc:
            if not _missing(exc):
                raise
        finally:
            await self._spool.discard()


class S3ArtifactStore:
    """Artifacts as objects `<prefix><key>` in one bucket of an S3-compatible service.

    Downloads are streamed through the deployer (ranged GETs), so devices need to reach only
    the deployer, and its device-token check stays the one gate in front of every byte.
    """

    def __init__(
        self,
        *,
        bucket: str,
        spool_dir: Path,
        prefix: str = "",
        part_bytes: int = 8 * MiB,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.part_bytes = max(part_bytes, MIN_PART_BYTES)
        self.spool = LocalArtifactStore(spool_dir)
        self._session = aioboto3.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        self._endpoint_url = endpoint_url
        self._client: S3Client | None = None
        self._exit = contextlib.AsyncExitStack()
        self._opening = asyncio.Lock()

    def object_key(self, key: str) -> str:
        """Return the object name of an artifact key."""
        return f"{self.prefix}{key}"

    async def client(self) -> S3Client:
        """Return the S3 client, opened on first use and kept for the process."""
        client = self._client
        if client is None:
            async with self._opening:
                client = self._client
                if client is None:
                    config = AioConfig(
                        signature_version="s3v4",
                        s3={"addressing_style": "path"},
                        retries={"max_attempts": 5, "mode": "standard"},
                        # Plain S3-compatible servers may not know the newer default checksums.
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                    )
                    client = await self._exit.enter_async_context(
                        self._session.client("s3", endpoint_url=self._endpoint_url, config=config)
                    )
                    self._client = client
        return client

    async def stage(self, key: str) -> S3StagedArtifact:
        """Return a new multipart upload to `key`, with its local spool."""
        spool = await self.spool.stage(key)
        try:
            client = await self.client()
            created = await client.create_multipart_upload(
                Bucket=self.bucket, Key=self.object_key(key), ContentType="application/zip"
            )
        except BaseException:
            await spool.discard()
            raise
        return S3StagedArtifact(self, key, created["UploadId"], spool)

    async def size(self, key: str) -> int:
        """Return the size in bytes of a stored artifact (FileNotFoundError if absent)."""
        client = await self.client()
        try:
            head = await client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from exc
            raise
        return int(head["ContentLength"])

    async def read(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        """Yield `length` bytes of an artifact from offset `start` (one ranged GET)."""
        if length <= 0:
            return
        client = await self.client()
        response = await client.get_object(
            Bucket=self.bucket,
            Key=self.object_key(key),
            Range=f"bytes={start}-{start + length - 1}",
        )
        body = response["Body"]
        try:
            async for chunk in body.iter_chunks(READ_CHUNK):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        """Remove an artifact; a missing one is not an error."""
        client = await self.client()
        await client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    async def sweep(self, older_than: timedelta) -> int:
        """Abort multipart uploads started longer than `older_than` ago; drop old spools."""
        client = await self.client()
        cutoff = datetime.now(UTC) - older_than
        removed = 0
        paginator = client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] >= cutoff:
                    continue
                try:
                    await client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
                except ClientError as exc:
                    if not _missing(exc):
                        raise
        return removed + await self.spool.sweep(older_than)

    async def pending_uploads(self) -> list[dict[str, Any]]:
        """Return the multipart uploads not yet completed or aborted (for diagnostics)."""
        client = await self.client()
        page = await client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        return [dict(u) for u in page.get("Uploads", [])]

    async def close(self) -> None:
        """Close the S3 client."""
        await self._exit.aclose()
        self._client = None


def build_store(settings: DeployerSettings) -> ArtifactStore:
    """Return the artifact store the settings choose."""
    if settings.artifact_backend == "s3":
        secret = settings.s3_secret_access_key
        return S3ArtifactStore(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            spool_dir=settings.artifact_dir,
            part_bytes=settings.s3_part_bytes,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
        )
    return LocalArtifactStore(settings.artifact_dir)
