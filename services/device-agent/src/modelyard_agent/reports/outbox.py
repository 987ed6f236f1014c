"""Reports spooled on disk and published in order, so a broker outage loses nothing.

Every report becomes a file in `<data_dir>/outbox` before anything is sent; a single publisher
task sends the files oldest first, each with publisher confirms, and deletes a file only once the
broker confirmed it. While the broker is unreachable the files simply wait (across agent restarts
too). The CloudEvent `id` is fixed when the file is written, so a report sent twice (confirm lost
in a crash) is recognised by the deployer as the same event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from modelyard_agent.store import write_atomically
from modelyard_common.contracts import EVENTS_EXCHANGE
from modelyard_common.events import CloudEvent
from modelyard_common.messaging import Broker

log = logging.getLogger("modelyard.agent.outbox")

PUBLISH_TIMEOUT_S = 10.0


class ReportOutbox:
    """A directory of pending events plus the task that publishes them in order."""

    def __init__(self, directory: Path, broker: Broker, *, retry_s: float) -> None:
        self.directory = directory
        self.broker = broker
        self.retry_s = retry_s
        self._wake = asyncio.Event()
        self._last_stamp = 0
        self.published = 0

    def prepare(self) -> None:
        """Create the directory and drop leftovers of interrupted writes (blocking, at start)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob(".*"):
            leftover.unlink(missing_ok=True)
        existing = self._pending_files()
        if existing:
            self._last_stamp = int(existing[-1].name.split("-", 1)[0])

    async def put(self, event: CloudEvent) -> None:
        """Spool an event for `aimodels.events` (routing key = its type) durably."""
        # Names sort in the order reports were made; time_ns keeps the order across restarts
        # and the max() keeps it even if the clock steps back.
        self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
        path = self.directory / f"{self._last_stamp:020d}-{event.id}.json"
        await asyncio.to_thread(write_atomically, path, event.to_bytes())
        self._wake.set()

    def pending(self) -> int:
        """Return how many events wait to be published."""
        return len(self._pending_files())

    async def run(self) -> None:
        """Publish spooled events forever, oldest first, retrying while the broker is down."""
        while True:
            self._wake.clear()
            try:
                await self._flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reports not delivered yet (%s); retrying in %.1fs", exc, self.retry_s)
                await asyncio.sleep(self.retry_s)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.retry_s):
                    await self._wake.wait()

    async def send_now(self, event: CloudEvent) -> bool:
        """Publish an event that is only worth sending now (heartbeat); return whether it went."""
        if not self.broker.is_connected:
            return False
        try:
            await self._publish(event)
        except Exception as exc:  # aio-pika raises many kinds while reconnecting
            log.info("heartbeat not sent (%s)", exc)
            return False
        return True

    async def _publish(self, event: CloudEvent) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for may swallow a cancellation.
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            await self.broker.publish(event, exchange=EVENTS_EXCHANGE, routing_key=event.type)

    async def _flush(self) -> None:
        for path in await asyncio.to_thread(self._pending_files):
            raw = await asyncio.to_thread(path.read_bytes)
            try:
                event = CloudEvent.model_validate_json(raw)
            except ValueError:
                log.error("dropping unreadable spooled report %s: %s", path.name, raw[:200])
                await asyncio.to_thread(path.unlink, missing_ok=True)
                continue
            await self._publish(event)
            await asyncio.to_thread(path.unlink, missing_ok=True)
            self.published += 1

    def _pending_files(self) -> list[Path]:
        return sorted(p for p in self.directory.glob("*.json") if not p.name.startswith("."))
