"""Hashing and writing an upload in a thread of its own, overlapped with receiving it.

The event loop hands each received chunk over (no copy: the chunk itself, or a memoryview of
it) and goes back to the network at once; a worker thread appends the chunks to the file with
one `writev` per batch while a second one hashes the same batches, in order. Hashing, writing
and receiving all release the GIL, so they run side by side: an upload goes as fast as the
slowest of the three, not as the sum of hashing and writing. At most `limit` bytes wait
between the loop and the workers (a byte is released once both have done with it): past that,
`write` waits until the workers have caught up by half (backpressure; a fast client never
makes the process hold the whole upload). The writer starts the kernel's write-back of what it
has written every few MiB, so the one fsync at the end finds little left to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence

MiB = 1024 * 1024
# What may wait between the event loop and the worker: a few socket reads' worth, so a slow
# disk moment does not stall the network, and never more than this per upload.
IN_FLIGHT_BYTES = 8 * MiB
# The worker wakes for this much at least (or the end): fewer wake-ups and GIL hand-overs,
# and each `writev` carries several received chunks.
BATCH_BYTES = 1 * MiB
WRITEBACK_BYTES = 8 * MiB
_IOV_MAX = 1024
_SYNC_FILE_RANGE_WRITE = 2

Chunk = bytes | bytearray | memoryview
"""Bytes handed to a writer; they must not change afterwards (another thread reads them)."""


def _writeback_starter() -> Callable[[int, int, int], object] | None:
    """Return Linux's `sync_file_range` (start write-back, do not wait), None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int

    def start(fd: int, offset: int, length: int) -> object:
        return function(fd, offset, length, _SYNC_FILE_RANGE_WRITE)

    return start


_start_writeback = _writeback_starter()


def write_all(fd: int, chunks: Sequence[Chunk]) -> int:
    """Append `chunks` to `fd` with as few `writev` calls as the kernel allows; return bytes."""
    total = 0
    pending: list[Chunk] = list(chunks)
    while pending:
        group = pending[:_IOV_MAX]
        del pending[:_IOV_MAX]
        expected = sum(len(chunk) for chunk in group)
        written = os.writev(fd, group)
        total += written
        if written < expected:
            # A short write (rare on files: a signal, a full disk about to say so): go on
            # from the first byte not written.
            rest: list[Chunk] = []
            for chunk in group:
                if written >= len(chunk):
                    written -= len(chunk)
                else:
                    rest.append(memoryview(chunk)[written:])
                    written = 0
            pending[:0] = rest
    return total


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class HashingFileWriter:
    """Appends chunks to an open file and hashes them (SHA-256), in two worker threads.

    `write` returns as soon as the chunk is queued (or, past `limit` queued bytes, once the
    worker has caught up by half). `close` waits for every byte, fsyncs and closes nothing:
    the file descriptor stays the caller's. `abort` drops what is queued and stops.
    `writeback_bytes=0` starts no early write-back (for a scratch file never fsynced).
    """

    def __init__(
        self,
        fd: int,
        *,
        limit: int = IN_FLIGHT_BYTES,
        writeback_bytes: int = WRITEBACK_BYTES,
    ) -> None:
        self._fd = fd
        self._limit = limit
        self._batch = min(BATCH_BYTES, limit)
        self._writeback_bytes = writeback_bytes
        self._hash = hashlib.sha256()
        self._loop = asyncio.get_running_loop()
        self._ready = threading.Condition()
        self._queue: deque[Chunk] = deque()
        self._queued = 0  # bytes handed over and not both written and hashed (backpressure)
        self._pending = 0  # of those, the bytes still in the queue (not taken by the writer)
        self._written_bytes = 0
        self._hashed_bytes = 0
        self._to_hash: queue.SimpleQueue[list[Chunk] | None] = queue.SimpleQueue()
        self._closing = False
        self._aborted = False
        self._sync = True
        self._error: BaseException | None = None
        self._room: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name="artifact-writer", daemon=True)
        self._thread.start()

    def sha256(self) -> str:
        """Return the hex SHA-256 of the bytes written (complete once `close` returned)."""
        return self._hash.hexdigest()

    async def write(self, chunk: Chunk) -> None:
        """Queue `chunk` to be hashed and written; wait only while too much is queued."""
        with self._ready:
            if self._error is not None:
                raise OSError(f"writing the upload failed: {self._error}") from self._error
            if self._closing:
                raise RuntimeError("the writer is closed")
            self._queue.append(chunk)
            self._queued += len(chunk)
            self._pending += len(chunk)
            if self._pending >= self._batch:
                self._ready.notify()
            if self._queued <= self._limit:
                return
            room = self._room = self._loop.create_future()
        await room

    async def close(self, *, sync: bool = True) -> None:
        """Wait until every queued byte is hashed and written (and fsynced with `sync`)."""
        with self._ready:
            self._closing = True
            self._sync = sync
            self._ready.notify()
        await asyncio.shield(self._done)
        if self._error is not None:
            raise OSError(f"writing the upload failed: {self._error}") from self._error

    async def abort(self) -> None:
        """Drop what is queued and wait for the worker to stop (its errors do not matter)."""
        with self._ready:
            self._closing = self._aborted = True
            self._queue.clear()
            self._pending = 0
            self._ready.notify()
        with contextlib.suppress(BaseException):
            await asyncio.shield(self._done)

    def _next_batch(self) -> list[Chunk] | None:
        with self._ready:
            while self._pending < self._batch and not self._closing:
                self._ready.wait()
            if self._aborted or not self._queue:
                return None
            batch = list(self._queue)
            self._queue.clear()
            self._pending = 0
            return batch

    def _release(self, written: int = 0, hashed: int = 0) -> None:
        """Note bytes written or hashed; release those both workers are done with."""
        with self._ready:
            before = min(self._written_bytes, self._hashed_bytes)
            self._written_bytes += written
            self._hashed_bytes += hashed
            self._queued -= min(self._written_bytes, self._hashed_bytes) - before
            room = self._room
            if room is None or self._queued > self._limit // 2:
                return
            self._room = None
        self._settle(room, None)

    def _hash_batches(self) -> None:
        """Hash the writer's batches in the order it wrote them, until it says the end."""
        try:
            while (batch := self._to_hash.get()) is not None:
                size = 0
                for chunk in batch:
                    self._hash.update(chunk)
                    size += len(chunk)
                self._release(hashed=size)
        except BaseException as exc:  # noqa: BLE001 - raised in the loop by `write` or `close`
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        with self._ready:
            self._error = self._error or exc
            room, self._room = self._room, None
        if room is not None:
            self._settle(room, exc)

    def _run(self) -> None:
        offset = 0
        unsynced = 0
        hasher = threading.Thread(target=self._hash_batches, name="artifact-hasher", daemon=True)
        hasher.start()
        try:
            try:
                while (batch := self._next_batch()) is not None:
                    self._to_hash.put(batch)
                    size = write_all(self._fd, batch)
                    offset += size
                    unsynced += size
                    if (
                        _start_writeback is not None
                        and self._writeback_bytes
                        and unsynced >= self._writeback_bytes
                    ):
                        _start_writeback(self._fd, offset - unsynced, unsynced)
                        unsynced = 0
                    self._release(written=size)
            finally:
                # The digest is whole once the hasher has taken every batch handed to it.
                self._to_hash.put(None)
                hasher.join()
            if not self._aborted and self._sync:
                os.fsync(self._fd)
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop, raised there
            self._failed(exc)
        finally:
            self._settle(self._done, None)

    def _settle(self, future: asyncio.Future[None], error: BaseException | None) -> None:
        # The loop may be gone when the process shuts down mid-upload; nobody waits then.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(_resolve, future, error)
