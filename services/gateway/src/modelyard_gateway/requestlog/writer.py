"""The request log's writer: records buffered in memory, written in batches off the hot path.

The proxy hands each finished request's `RequestRecord` to `RequestLog.record`: a deque append,
no I/O. A background task writes the buffer with COPY (asyncpg's binary copy, one round trip per
batch of up to `request_log_batch` rows) every `request_log_flush_s` seconds, or as soon as a
batch is full. The buffer is bounded (`request_log_buffer`): while the database is unreachable
the replica keeps that many records and retries; beyond it a record is dropped and counted in
`modelyard_gateway_request_log_dropped_total`, never slowing or failing the client's request.
A graceful stop writes what is left; a crash loses at most the unflushed records of that replica
(about one flush interval of its traffic).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from sqlalchemy.ext.asyncio import AsyncEngine

from modelyard_common.periodic import Periodic
from modelyard_gateway import metrics
from modelyard_gateway.requestlog import retention
from modelyard_gateway.requestlog.record import COLUMNS, RequestRecord

log = logging.getLogger("modelyard.gateway.requestlog")

_DAY_S = 86400


class RequestLog(Periodic):
    """One replica's buffer of request records and the task that writes them."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        replica: str,
        flush_s: float,
        batch: int,
        buffer: int,
        body_bytes: int,
    ) -> None:
        super().__init__(flush_s, name="request log write", log=log)
        self.engine = engine
        self.replica = replica
        self.batch = batch
        self.limit = buffer
        self.body_bytes = body_bytes
        self._buffer: deque[RequestRecord] = deque()
        self._lock = asyncio.Lock()
        self._days_ready: set[int] = set()
        self.written = 0
        self.dropped = 0

    def record(self, entry: RequestRecord) -> None:
        """Keep a finished request's record for the next write (dropped, counted, when full)."""
        buffer = self._buffer
        if len(buffer) >= self.limit:
            self._drop(1)
            return
        buffer.append(entry)
        if len(buffer) >= self.batch:
            self.wake()

    @property
    def pending(self) -> int:
        """Return how many records wait to be written."""
        return len(self._buffer)

    def _drop(self, count: int) -> None:
        self.dropped += count
        metrics.request_log_dropped.inc(count)

    async def flush(self) -> int:
        """Write every buffered record, a batch at a time; return how many were written.

        A batch that fails goes back to the front of the buffer (what no longer fits is dropped
        and counted) and the error is raised.
        """
        written = 0
        async with self._lock:
            # Only what waits now: what arrives meanwhile goes with the next tick (or the next
            # full batch). Chasing it would write a trickle of tiny batches, one connection
            # checkout each, without end while traffic lasts (a busy replica's CPU went there).
            due = len(self._buffer)
            while due > 0 and self._buffer:
                size = min(self.batch, due, len(self._buffer))
                due -= size
                taken = [self._buffer.popleft() for _ in range(size)]
                try:
                    await self._write(taken)
                except BaseException:
                    # A partition may have gone (a restored or recreated database): ask again.
                    self._days_ready.clear()
                    room = max(self.limit - len(self._buffer), 0)
                    if room < len(taken):
                        self._drop(len(taken) - room)
                        taken = taken[:room]
                    self._buffer.extendleft(reversed(taken))
                    raise
                written += size
                self.written += size
                metrics.request_log_written.inc(size)
        return written

    async def _write(self, records: list[RequestRecord]) -> None:
        rows = [r.row(self.replica) for r in records]
        days = {int(r.at) // _DAY_S for r in records}
        missing = days - self._days_ready
        if missing:
            await retention.ensure_partitions(self.engine, days=sorted(missing))
            self._days_ready |= missing
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            copier = raw.driver_connection
            assert copier is not None
            await copier.copy_records_to_table(
                "request_log", schema_name="gateway", columns=COLUMNS, records=rows
            )

    async def tick(self) -> None:
        """Write what is buffered."""
        await self.flush()

    def start(self) -> None:
        """Write in a background task (partitions are checked again from now on)."""
        self._days_ready.clear()
        super().start()

    def abandoned(self) -> None:
        """Say how many records a stop could not write."""
        if self._buffer:
            log.error("request log stopped with %d records unwritten", len(self._buffer))
