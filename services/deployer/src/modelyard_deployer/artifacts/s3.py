"""The S3 artifact store: objects in one bucket of an S3-compatible service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError

from modelyard_deployer.artifacts.local import LocalArtifactStore, LocalStagedArtifact
from modelyard_deployer.artifacts.store import READ_CHUNK
from modelyard_deployer.artifacts.writing import Chunk

if TYPE_CHECKING:  # type stubs only (a dev dependency), never imported at run time
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

MiB = 1024 * 1024
# S3's floor for every part but the last.
MIN_PART_BYTES = 5 * MiB


def _missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


class S3StagedArtifact:
    """A multipart upload to the final key, fed part by part while the bytes arrive.

    Nothing is visible in the bucket until `commit` completes the upload; `discard` aborts it.
    A spool file on local disk keeps a copy for validation (the zip is read at random offsets
    before it is accepted), hashed on the way by the spool's worker thread. Up to the store's
    `parts_in_flight` parts are sent at once; past that, `write` waits for one to land, so
    memory stays at those parts plus the one filling, whatever the upload's size.
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
        self._filling: list[Chunk] = []
        self._filling_bytes = 0
        self._next_part = 1
        self._parts: list[CompletedPartTypeDef] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
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
        """Return the hex SHA-256 of everything written (complete after `flush`)."""
        return self._spool.sha256()

    async def write(self, chunk: Chunk) -> None:
        """Append `chunk`: to the spool (hashed), and to the bucket once a part is full."""
        self._raise_failure()
        await self._spool.write(chunk)
        self._filling.append(chunk)
        self._filling_bytes += len(chunk)
        if self._filling_bytes >= self._store.part_bytes:
            await self._send_part()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _send_part(self) -> None:
        chunks = self._filling
        self._filling = []
        self._filling_bytes = 0
        while len(self._sending) >= self._store.parts_in_flight:
            await asyncio.wait(set(self._sending), return_when=asyncio.FIRST_COMPLETED)
            self._raise_failure()
        number = self._next_part
        self._next_part += 1
        task = asyncio.create_task(self._upload_part(number, chunks))
        self._sending.add(task)
        task.add_done_callback(self._part_done)

    def _part_done(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    async def _upload_part(self, number: int, chunks: list[Chunk]) -> None:
        # The one copy of a part: its body must be one buffer to be signed and sent. Joined in
        # a thread, so the event loop goes on receiving meanwhile.
        body = await asyncio.to_thread(b"".join, chunks)
        chunks.clear()  # the received chunks go now, not when the part has landed
        client = await self._store.client()
        response = await client.upload_part(
            Bucket=self._store.bucket,
            Key=self._store.object_key(self._key),
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})

    async def flush(self) -> None:
        """Send the last part, wait for every part to land, and close the spool."""
        if self._flushed:
            return
        await self._spool.flush()
        if self._filling or self._next_part == 1:
            await self._send_part()
        while self._sending:
            await asyncio.wait(set(self._sending))
        self._raise_failure()
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
        """Abort the multipart upload (its parts are freed) and remove the spool.

        Parts still in flight are cancelled first.
        """
        for task in list(self._sending):
            task.cancel()
        if self._sending:
            await asyncio.wait(set(self._sending))
        self._filling = []
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
        parts_in_flight: int = 4,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.part_bytes = max(part_bytes, MIN_PART_BYTES)
        self.parts_in_flight = max(parts_in_flight, 1)
        # The spool is a scratch copy for the zip checks, removed after: never fsynced.
        self.spool = LocalArtifactStore(spool_dir, durable=False)
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
